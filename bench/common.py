"""Small helpers shared by the benchmark scripts: timing, memory, disk, data blocks."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np


def now() -> float:
    return time.perf_counter()


def peak_rss_mib() -> float:
    """Peak resident set size of this process image so far: ``VmHWM``, which, unlike
    ``ru_maxrss``, does not carry over the parent's peak across fork + exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Current resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def disk_bytes(path: str | Path) -> int:
    """Bytes allocated on disk under ``path`` (a file or folder), as ``du`` counts them."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_blocks * 512
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    if not len(a):
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None, "n": 0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(a.mean()), 3),
        "n": len(a),
    }


def recall_at_k(found: list[int], truth: np.ndarray, k: int = 10) -> float:
    want = [int(t) for t in truth[:k] if t >= 0]
    if not want:
        return 1.0
    return len(set(found[:k]) & set(want)) / len(want)


def read_vectors(folder: str | Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start..stop`` of ``vectors.npy`` read with plain file reads (no mmap, so the
    data file does not count in this process's RSS)."""
    path = Path(folder) / "vectors.npy"
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, _, _ = read_header(f)
        offset = f.tell()
        dim = shape[1]
        f.seek(offset + start * dim * 4)
        return np.fromfile(f, dtype=np.float32, count=(stop - start) * dim).reshape(-1, dim)


def machine() -> dict:
    load = os.getloadavg()
    mem = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            if k in ("MemTotal", "MemAvailable"):
                mem[k] = round(int(v.split()[0]) / 2**20, 1)
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_total_gib": mem.get("MemTotal"),
        "mem_available_gib": mem.get("MemAvailable"),
        "loadavg": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("engram-store", "numpy", "scipy", "faiss-cpu", "lancedb", "pyarrow", "bm25s"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


def emit(obj: dict) -> None:
    """The last line a worker prints: one JSON object its parent reads."""
    print("RESULT " + json.dumps(obj), flush=True)


def parse_result(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError("worker printed no RESULT line:\n" + stdout[-3000:])
