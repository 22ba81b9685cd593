"""Fault injection: SIGKILL a writer at random moments and check what survives::

    python -m bench.faults --kills 100 --work /tmp/engram-faults

One store takes every kill in turn. Each round starts a writer process that adds, updates and
deletes documents (and now and then saves or rebuilds the indexes), printing ``begin`` before and
``ack`` after each operation; after a random delay it is killed with SIGKILL. Then:

- corrupt: the SQL integrity check, the changelog check or an index file check (``engram
  check``) fails, before or after the store is reopened;
- lost: a document whose last acknowledged state (text hash, or deleted) is not what the store
  holds, unless the one operation in flight at the kill explains it;
- wrong results: a present document's unique token does not find it (keyword and vector), or a
  deleted one's does.

Prints one JSON line. The writer embeds with ``HashEmbedder`` (hashed bag of words, no model)
unless ``--embedder local``: the benchmark is about storage, and a model load per round would
make it model-bound.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

DIM = 64
KEYS = 150


class HashEmbedder:
    """Deterministic bag-of-hashed-words vectors: similar texts get similar vectors."""

    model_id, dim, max_tokens = "hash-bow-64", DIM, 512

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
                out[i, h % DIM] += 1.0 if h & 1 << 20 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def _embedder(name: str):
    if name == "local":
        from engram.embed.local import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(threads=1)
    return HashEmbedder()


def make_doc(key: str, version: int):
    from engram.types import Document

    rng = random.Random(f"{key}/{version}")
    filler = " ".join(rng.choice(["river", "stone", "lamp", "field", "cloud"]) for _ in range(40))
    token = "".join(chr(97 + b % 26) for b in hashlib.blake2b(f"{key}/{version}".encode()).digest())
    parts = [f"Record {key} version {version} token {token[:12]}. {filler}."]
    parts += [f"Appendix {j} of {key}: {filler}." for j in range(rng.randrange(0, 6))]
    return Document(id=key, text=" ".join(parts), source=f"{key}.txt")


def writer(path: str, seed: int, embedder: str) -> None:
    """Random writes until killed; ``begin``/``ack`` lines on stdout."""
    from engram.memory import Memory, document_identity

    rng = random.Random(seed)
    with Memory(path, embedder=_embedder(embedder), save_every_changes=40) as mem:
        print("ready", flush=True)
        first = True
        while True:
            op = rng.choices(["put", "delete", "save", "reindex"], [8, 3, 1, 0.3])[0]
            op, first = "put" if first else op, False  # a delete needs the namespace
            key = f"k{rng.randrange(KEYS)}"
            if op == "put":
                doc = make_doc(key, rng.randrange(10**9))
                digest = document_identity(doc)[1]
                print(f"begin put {key} {digest}", flush=True)
                mem.add([doc])
                print(f"ack put {key} {digest}", flush=True)
            elif op == "delete":
                print(f"begin delete {key} -", flush=True)
                mem.delete([key])
                print(f"ack delete {key} -", flush=True)
            elif op == "save":
                mem.save()
            else:
                mem.reindex()


def _findings_ok(path: Path) -> tuple[bool, list[str]]:
    from engram.check import check_store

    findings = check_store(path)
    return all(f.ok for f in findings), [f.line() for f in findings if not f.ok]


def _stored(path: Path) -> dict[str, str]:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT doc_key, content_hash FROM documents").fetchall())
    finally:
        conn.close()


def _lost(expected: dict[str, str], in_flight: tuple[str, str] | None, stored: dict) -> list:
    """Keys whose stored state is neither the acknowledged one nor the in-flight one."""
    lost = []
    for key in set(expected) | set(stored):
        have = stored.get(key, "-")
        allowed = {expected.get(key, "-")}
        if in_flight and in_flight[0] == key:
            allowed.add(in_flight[1])
        if have not in allowed:
            lost.append(key)
    return lost


def _wrong_results(path: Path, expected: dict[str, str], embedder: str, rng) -> int:
    """Searches whose top hit is not the document holding the query's unique token."""
    from engram.memory import Memory

    wrong = 0
    with Memory(path, embedder=_embedder(embedder)) as mem:
        rows = mem.store.conn.execute(
            "SELECT d.doc_key, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.position = 0"
        ).fetchall()
        first = dict(rows)
        for key in rng.sample(sorted(first), min(5, len(first))):
            token = first[key].split()[5].rstrip(".")  # letters unique to this version
            for query, mode in ((token, "keyword"), (first[key], "vector")):
                hits = mem.search(query, k=1, mode=mode)
                if not hits or hits[0].doc_id != key:
                    wrong += 1
                    print(f"wrong: {mode} {key} {hits[:1]}", file=sys.stderr)
        gone = [k for k, v in expected.items() if v == "-" and k not in first]
        for key in gone[:3]:
            wrong += any(h.doc_id == key for h in mem.search(f"Record {key}", k=10))
    return wrong


def round_(path: Path, seed: int, embedder: str, expected: dict[str, str]) -> dict:
    """One writer run, killed at a random moment, then checked. Updates ``expected``."""
    rng = random.Random(seed)
    env = {**os.environ, "ENGRAM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bench.faults", "--writer", str(path), "--seed", str(seed)]
    cmd += ["--embedder", embedder]
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the writer did not start")
    time.sleep(rng.uniform(0.05, 1.5))
    proc.send_signal(signal.SIGKILL)
    # Read the rest through the same buffered reader that read "ready": lines the writer
    # printed right after it may already sit in that buffer (communicate() would skip them).
    out = proc.stdout.read()
    err = proc.stderr.read() if proc.stderr is not None else ""
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the writer failed before the kill:\n{err}")
    in_flight = None
    for line in out.splitlines():
        kind, op, key, digest = line.split()
        if kind == "begin":
            in_flight = (key, digest)
        else:
            expected[key] = digest
            in_flight = None
    ok_before, problems = _findings_ok(path)
    lost = _lost(expected, in_flight, _stored(path))
    for key, have in _stored(path).items():  # the in-flight write, if committed, counts
        expected[key] = have
    for key in [k for k in expected if k not in _stored(path)]:
        expected[key] = "-"
    wrong = _wrong_results(path, expected, embedder, rng)
    ok_after, more = _findings_ok(path)
    return {
        "ops": sum(1 for line in out.splitlines() if line.startswith("ack")),
        "corrupt": not (ok_before and ok_after),
        "problems": problems + more,
        "lost": len(lost),
        "wrong": wrong,
    }


def run(kills: int, work: Path, embedder: str = "hash", seed: int = 0) -> dict:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    path = work / "faults.db"
    expected: dict[str, str] = {}
    rounds = []
    t0 = time.perf_counter()
    for i in range(kills):
        rounds.append(round_(path, seed * 100_003 + i, embedder, expected))
    return {
        "kills": kills,
        "embedder": embedder,
        "acknowledged_ops": sum(r["ops"] for r in rounds),
        "documents_at_end": sum(1 for v in expected.values() if v != "-"),
        "corrupt_stores": sum(r["corrupt"] for r in rounds),
        "lost_committed_documents": sum(r["lost"] for r in rounds),
        "wrong_results": sum(r["wrong"] for r in rounds),
        "problems": [p for r in rounds for p in r["problems"]][:10],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--work", default="/tmp/engram-faults")
    p.add_argument("--embedder", choices=["hash", "local"], default="hash")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--writer", metavar="STORE", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.writer:
        writer(a.writer, a.seed, a.embedder)
        return
    print(json.dumps(run(a.kills, Path(a.work), a.embedder, a.seed)))


if __name__ == "__main__":
    main()
