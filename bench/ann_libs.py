"""Vector index libraries side by side on the same synthetic vectors: hnswlib, usearch and
faiss-cpu HNSW graphs, and Engram's own inverted lists (``ivf``).

Each builds an inner-product HNSW graph with Engram's defaults (M 32, ef_construction 200) over
the same ``--scale`` clustered 384-d unit vectors of ``bench.data``, on ``--threads`` threads,
then answers the same queries one at a time at ef_search 128; recall@10 is against exact
(numpy) search. Times are wall clock and, less disturbed by other jobs on a shared machine, this
process's CPU time (``*_cpu_*``; the build runs on one thread by default). One JSON line per
library::

    python -m bench.ann_libs --scale 100000 --libs hnswlib,usearch,faiss,ivf
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.common import percentiles
from bench.data import Generator, Spec, exact_top

Search = Callable[[np.ndarray], np.ndarray]


def _hnswlib(x: np.ndarray, a: argparse.Namespace, path: str) -> tuple[Search, Callable]:
    import hnswlib

    idx = hnswlib.Index(space="ip", dim=x.shape[1])
    idx.init_index(max_elements=len(x), M=a.m, ef_construction=a.efc)
    idx.add_items(x, np.arange(len(x)), num_threads=a.threads)
    idx.set_ef(a.ef)

    def save_load() -> None:
        idx.save_index(path)
        other = hnswlib.Index(space="ip", dim=x.shape[1])
        other.load_index(path)

    return lambda q: idx.knn_query(q, k=10, num_threads=1)[0][0], save_load


def _usearch(x: np.ndarray, a: argparse.Namespace, path: str) -> tuple[Search, Callable]:
    from usearch.index import Index

    idx = Index(
        ndim=x.shape[1],
        metric="ip",
        dtype="f32",
        connectivity=a.m,
        expansion_add=a.efc,
        expansion_search=a.ef,
    )
    idx.add(np.arange(len(x)), x, threads=a.threads)

    def save_load() -> None:
        idx.save(path)
        Index.restore(path)

    return lambda q: idx.search(q, 10, threads=1).keys, save_load


def _faiss(x: np.ndarray, a: argparse.Namespace, path: str) -> tuple[Search, Callable]:
    import faiss

    faiss.omp_set_num_threads(a.threads)
    idx = faiss.IndexHNSWFlat(x.shape[1], a.m, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = a.efc
    idx.add(x)
    idx.hnsw.efSearch = a.ef

    def save_load() -> None:
        faiss.write_index(idx, path)
        faiss.read_index(path)

    return lambda q: idx.search(q[None, :], 10)[1][0], save_load


def _ivf(x: np.ndarray, a: argparse.Namespace, path: str) -> tuple[Search, Callable]:
    """Engram's inverted lists (``engram.index.ivf``): k-means over a sample, rows grouped by
    list, ``--nprobe`` lists scanned exactly; saved as .npy files and mapped on load."""
    from engram.index.ivf import IvfLists, default_nlist, train

    nlist = default_nlist(len(x))
    rng = np.random.default_rng(1234)
    sample = x[np.sort(rng.choice(len(x), size=min(len(x), 64 * nlist), replace=False))]
    idx = IvfLists.build(train(sample, nlist, a.threads), [(np.arange(len(x)), x)])
    folder = Path(path).parent

    def search(q: np.ndarray) -> np.ndarray:
        ids, scores = idx.scan(q, a.nprobe)
        top = np.argpartition(-scores, 9)[:10] if len(scores) > 10 else np.arange(len(scores))
        return ids[top]

    def save_load() -> None:
        files = idx.save(folder, "ivf")
        IvfLists.load(folder, "ivf")
        total = sum(os.path.getsize(folder / f) for f in files)
        with open(path, "wb") as f:  # the size the caller reports
            f.truncate(total)

    return search, save_load


LIBS = {"hnswlib": _hnswlib, "usearch": _usearch, "faiss": _faiss, "ivf": _ivf}


def measure(name: str, x: np.ndarray, qs: np.ndarray, truth: np.ndarray, a: Any) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.bin")
        t0, c0 = time.perf_counter(), time.process_time()
        search, save_load = LIBS[name](x, a, path)
        build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        times, cpu, hits = [], [], 0
        for q, t in zip(qs, truth, strict=True):
            t1, c1 = time.perf_counter(), time.process_time()
            found = search(q)
            times.append((time.perf_counter() - t1) * 1000)
            cpu.append((time.process_time() - c1) * 1000)
            hits += len(set(np.asarray(found).tolist()) & set(t.tolist()))
        t2 = time.perf_counter()
        save_load()
        reload = time.perf_counter() - t2
        size = os.path.getsize(path)
    pct = percentiles(times)
    return {
        "lib": name,
        "scale": len(x),
        "build_s": round(build, 1),
        "build_cpu_s": round(build_cpu, 1),
        "recall@10": round(hits / truth.size, 4),
        "p50_ms": pct["p50_ms"],
        "p99_ms": pct["p99_ms"],
        "p50_cpu_ms": round(float(np.median(cpu)), 3),
        "save_load_s": round(reload, 2),
        "file_mib": round(size / 2**20, 1),
        "m": a.m,
        "ef_construction": a.efc,
        "ef_search": a.ef,
        "nprobe": a.nprobe if name == "ivf" else None,
        "threads": a.threads,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--libs", default="hnswlib,usearch,faiss")
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--efc", type=int, default=200)
    p.add_argument("--ef", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--nprobe", type=int, default=24, help="lists scanned per query (ivf)")
    a = p.parse_args(argv)
    gen = Generator(Spec(scale=a.scale))
    x = np.ascontiguousarray(gen.block(0, a.scale)["vectors"], dtype=np.float32)
    rng = np.random.default_rng(7)
    src = x[rng.integers(0, a.scale, a.queries)]
    noise = rng.standard_normal(src.shape).astype(np.float32) * 0.88 / np.sqrt(x.shape[1])
    qs = src + noise
    qs = (qs / np.linalg.norm(qs, axis=1, keepdims=True)).astype(np.float32)
    truth = exact_top(x, qs, 10)
    for name in a.libs.split(","):
        try:
            row = measure(name, x, qs, truth, a)
        except ImportError as exc:  # hnswlib builds from source: not in any extra
            row = {"lib": name, "skipped": f"not installed ({exc.name})"}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
