"""An ingest killed with SIGKILL leaves a readable store; every committed chunk is found."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from engram.memory import Memory
from engram.types import Document

N_DOCS = 120

WRITER = textwrap.dedent(f"""
    import sys
    from engram.memory import Memory
    from engram.types import Document

    docs = [Document(id=f"d{{i}}", text=f"Record {{i}} carries the marker kill{{i}} and notes "
                     f"on subject {{i % 7}}.") for i in range({N_DOCS})]
    with Memory(sys.argv[1], embed_batch=8) as mem:
        mem.add(docs)
""")


def _docs() -> list[Document]:
    return [
        Document(
            id=f"d{i}", text=f"Record {i} carries the marker kill{i} and notes on subject {i % 7}."
        )
        for i in range(N_DOCS)
    ]


def _committed(path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        n = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        conn.close()
        return n
    except sqlite3.Error:
        return 0


def test_sigkill_mid_ingest_then_resume(tmp_path):
    path = tmp_path / "crash.db"
    env = {**os.environ, "ENGRAM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
    deadline = time.time() + 300
    while _committed(path) < 16 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = _committed(path)
    assert 0 < committed < N_DOCS, "the writer must be killed part-way"

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    keys = [r[0] for r in conn.execute("SELECT doc_key FROM documents")]
    conn.close()

    with Memory(path) as mem:  # the embedder the store was made with (the default)
        assert mem.stats()["chunks"] == committed
        for key in keys:
            i = key[1:]
            hits = mem.search(f"kill{i}", k=1, mode="keyword")
            assert hits and hits[0].doc_id == key
        hits = mem.search(f"Record {keys[0][1:]} marker", k=5, mode="vector")
        assert hits
        report = mem.add(_docs())
        assert report.unchanged == committed
        assert report.added == N_DOCS - committed
        assert mem.stats()["documents"] == N_DOCS
        assert mem.stats()["chunks"] == N_DOCS
        missing = [
            i
            for i in range(N_DOCS)
            if not mem.search(f"kill{i}", k=1, mode="keyword")
            or mem.search(f"kill{i}", k=1, mode="keyword")[0].doc_id != f"d{i}"
        ]
        assert missing == []
