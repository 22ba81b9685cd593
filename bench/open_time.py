"""Time to open a store with precomputed vectors (index files loaded and, from index format 2 on,
checked against their checksums)::

    python -m bench.open_time --rows 100000 --work /tmp/open-bench

Builds ``--rows`` synthetic documents (random 384-dim unit vectors, an HNSW graph) once under
``--work``, then opens the store ``--repeat`` times in this process (warm page cache) and prints
a JSON line: median and max open seconds, the index files' total size, and the source tree used.
Run it once with each source tree on ``PYTHONPATH`` to compare two versions (each gets its own
store; ``--store PATH`` times an existing one again).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

DIM = 384
WORDS = [f"w{i}" for i in range(5000)]


def build(path: Path, rows: int) -> None:
    from engram.embed.precomputed import PrecomputedEmbedder
    from engram.memory import Memory
    from engram.types import Document

    rng = np.random.default_rng(0)
    pick = random.Random(0)
    with Memory(path, embedder=PrecomputedEmbedder(DIM, "synthetic-384"), ann="hnsw") as mem:
        for start in range(0, rows, 20_000):
            n = min(20_000, rows - start)
            docs = [
                Document(id=f"d{start + i}", text=" ".join(pick.choices(WORDS, k=30)))
                for i in range(n)
            ]
            vecs = rng.standard_normal((n, DIM)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            mem.import_vectors(docs, vecs)
        mem.save()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--work", default="/tmp/engram-open-bench")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--store", help="time this existing store instead (built by this script)")
    a = p.parse_args(argv)
    import engram
    from engram.embed.precomputed import PrecomputedEmbedder
    from engram.memory import Memory

    src = str(Path(engram.__file__).resolve().parents[2])
    tag = hashlib.sha256(src.encode()).hexdigest()[:8]  # one store per source tree
    path = Path(a.store) if a.store else Path(a.work) / f"n{a.rows}-{tag}" / "engram.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not path.exists():
        build(path, a.rows)
    build_s = time.perf_counter() - t0
    times = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        mem = Memory(path, embedder=PrecomputedEmbedder(DIM, "synthetic-384"), ann="hnsw")
        times.append(time.perf_counter() - t)
        mem.store.close()  # no save: nothing changed
    size = sum(f.stat().st_size for f in Path(str(path) + ".index").rglob("*") if f.is_file())
    print(
        json.dumps(
            {
                "rows": a.rows,
                "source": src,
                "build_s": round(build_s, 1),
                "open_s_first": round(times[0], 3),
                "open_s_median": round(statistics.median(times), 3),
                "open_s_max": round(max(times), 3),
                "index_bytes": size,
            }
        )
    )


if __name__ == "__main__":
    main()
