"""Several writer processes and readers on one store, SQLite and PostgreSQL.

Writers add and update documents one at a time (each ``add`` commits) and print every key once
its write has returned; readers search all the while, and re-open the store now and then.
Nothing may surface a lock error, and afterwards every acknowledged write is searchable in its
latest version. The PostgreSQL run needs ``ENGRAM_TEST_PG_URL`` (see tests/pg.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pg import BACKENDS, HashEmbedder, pg_url, store_location

from engram.memory import Memory

WRITERS, READERS, DOCS_PER_WRITER = 3, 2, 16

WRITER = textwrap.dedent("""
    import sys
    from engram.memory import Memory
    from engram.types import Document
    from pg import HashEmbedder

    location, w, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with Memory(location, embedder=HashEmbedder()) as mem:
        for i in range(n):
            key = f"w{w}-{i}"
            mem.add(Document(id=key, text=f"Writer {w} note {i} carries marker mk{w}x{i}.",
                             metadata={"writer": w, "i": i}))
            print("ack", key, f"mk{w}x{i}", flush=True)
            if i % 4 == 3:  # rewrite an earlier note: an update racing other writers
                key = f"w{w}-{i - 2}"
                mem.add(Document(id=key, text=f"Writer {w} rewrote note {i - 2}: marker "
                                 f"up{w}x{i - 2}.", metadata={"writer": w, "i": i - 2}))
                print("ack", key, f"up{w}x{i - 2}", flush=True)
""")

READER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from engram.errors import NamespaceError
    from engram.memory import Memory
    from pg import HashEmbedder

    location, stop = sys.argv[1], Path(sys.argv[2])
    searches, opens = 0, 0
    mem = Memory(location, embedder=HashEmbedder())
    deadline = time.time() + 600
    while not stop.exists() and time.time() < deadline:
        for mode in ("keyword", "vector", "hybrid"):
            try:
                mem.search("writer note marker", k=10, mode=mode, where={"writer": {"$gte": 0}})
            except NamespaceError:
                pass  # nothing written yet: the default namespace does not exist
            searches += 1
        if searches % 15 == 0:
            mem.close()
            mem = Memory(location, embedder=HashEmbedder())
            opens += 1
    mem.close()
    print("searches", searches, "opens", opens, flush=True)
""")


def _env() -> dict[str, str]:
    tests = str(Path(__file__).parent)
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": tests + (os.pathsep + path if path else ""),
        "ENGRAM_THREADS": "1",
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_writers_and_readers_in_parallel(backend, tmp_path):
    run_in_parallel(backend, tmp_path, initialise=True, docs_per_writer=DOCS_PER_WRITER)


@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_create_the_store_together(backend, tmp_path):
    # Nothing creates the store beforehand: five processes open it at once (migrations,
    # settings, the first vectors).
    run_in_parallel(backend, tmp_path, initialise=False, docs_per_writer=4)


def run_in_parallel(backend: str, tmp_path: Path, *, initialise: bool, docs_per_writer: int):
    if backend == "postgres":
        pg_url()
    with store_location(backend, tmp_path, "conc") as location:
        if initialise:
            # One process creates the store and records the embedder, as a deployment would.
            with Memory(location, embedder=HashEmbedder()) as mem:
                mem.embed_query("first")
        stop = tmp_path / "stop"
        env = _env()
        readers = [
            subprocess.Popen(
                [sys.executable, "-c", READER, location, str(stop)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(READERS)
        ]
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, location, str(w), str(docs_per_writer)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(WRITERS)
        ]
        latest: dict[str, str] = {}
        outputs = []
        try:
            for proc in writers:
                out, err = proc.communicate(timeout=600)
                outputs.append(err)
                assert proc.returncode == 0, err[-3000:]
                for line in out.splitlines():
                    _, key, marker = line.split()
                    latest[key] = marker  # a writer's own order: the last ack wins
        finally:
            stop.touch()
            for proc in readers:
                try:
                    out, err = proc.communicate(timeout=300)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out, err = proc.communicate()
                outputs.append(err)
                assert proc.returncode == 0, err[-3000:]
                assert int(out.split()[1]) > 0
        assert not any("locked" in e.lower() or "Traceback" in e for e in outputs), outputs
        if os.environ.get("ENGRAM_TEST_SHOW_STDERR"):
            print("\n".join(outputs))
        assert len(latest) == WRITERS * docs_per_writer

        with Memory(location, embedder=HashEmbedder()) as mem:
            stats = mem.stats()
            assert stats["documents"] == len(latest) and stats["chunks"] == len(latest)
            for key, marker in latest.items():
                hits = mem.search(marker, k=3, mode="keyword")
                assert hits and hits[0].doc_id == key, (key, marker)
                if marker.startswith("up"):  # the replaced text is gone
                    old = "mk" + marker[2:]
                    assert all(h.doc_id != key for h in mem.search(old, k=3, mode="keyword"))
            assert mem.store.integrity_check() == "ok"
            start = time.time()
            for key in list(latest)[:: max(1, len(latest) // 8)]:
                w, i = key[1:].split("-")
                text = next(
                    h.text for h in mem.search(latest[key], k=1, mode="keyword") if h.doc_id == key
                )
                assert mem.search(text, k=1, mode="vector")[0].doc_id == key
                assert mem.search(text, k=1, where={"writer": int(w), "i": int(i)})[0].doc_id == (
                    key
                )
            assert time.time() - start < 60
