"""Load test for ``engram serve``: concurrent writes and searches over real HTTP, then a check
that every acknowledged write is searchable.

    python bench/load.py --backend sqlite|postgres|both [--clients 8] [--duration 30]
        [--max-requests 2000] [--embedder local|onnx] [--out load.json]

For each backend it starts a server process (``create_app`` under uvicorn, as ``engram serve``
does) on 127.0.0.1 over a fresh store (a temporary SQLite file, or a new schema of the
PostgreSQL database at ``--pg-url`` / ``$ENGRAM_TEST_PG_URL``, dropped afterwards), creates a
write key, and runs ``--clients`` threads (httpx) for ``--duration`` seconds or
``--max-requests`` requests, whichever comes first. Each request is a write (one short document
holding a unique marker word; the returned id is recorded) with probability ``--write-ratio``,
else a hybrid search. Afterwards every acknowledged id is looked up by a keyword search for its
marker (k=1): a write that is not found is lost. Prints JSON: requests/s, p50/p99 latency per
operation, errors and lost writes (must be 0; the exit status is 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

NAMESPACE = "load"
WORDS = [
    *("river", "garden", "lantern", "copper", "meadow", "harbor", "violin", "orchard"),
    *("pepper", "canyon", "glacier", "ember", "falcon", "saddle", "quartz", "willow"),
    *("marble", "thunder", "cedar", "velvet"),
]
SEARCHES = [
    "garden by the river",
    "copper lantern in the harbor",
    "violin music at night",
    "orchard pepper harvest",
    "glacier canyon thunder",
]


# -- the server process -----------------------------------------------------------------------
def serve(location: str, embedder: str, port: int) -> None:
    """Child process: open the store, create a write key (printed), serve on 127.0.0.1."""
    import uvicorn

    from engram.memory import Memory
    from engram.server.app import create_app
    from engram.server.keys import KeyStore

    keys = KeyStore(location)
    _, plaintext = keys.create([NAMESPACE], "write", name="load-test")
    memory = Memory(location, embedder=embedder)
    memory.embedder.embed(["warm up"])  # load the model before the clock starts
    app = create_app(memory, keys=keys, open_when_no_keys=False)
    print(f"KEY {plaintext}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def fresh_location(backend: str, pg_url: str | None):
    """A new store location: a SQLite file in a temp dir, or a new PostgreSQL schema."""
    if backend == "sqlite":
        tmp = tempfile.mkdtemp(prefix="engram-load-")
        try:
            yield str(Path(tmp) / "load.db")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if not pg_url:
        raise SystemExit("postgres: give --pg-url or set ENGRAM_TEST_PG_URL")
    import psycopg
    from psycopg import sql

    schema = f"engram_load_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    option = quote(f"-csearch_path={schema},public", safe="")
    try:
        yield f"{pg_url}{'&' if '?' in pg_url else '?'}options={option}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def server(location: str, embedder: str):
    """Start the server process; yields ``(base_url, write_key)``."""
    port = free_port()
    cmd = [sys.executable, __file__, "--_serve", location, embedder, str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("KEY "):
            raise SystemExit(f"server did not start (exit {proc.poll()})")
        key = line.split()[1]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("server did not answer /health")
            time.sleep(0.2)
        yield url, key
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the load ---------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run_load(url: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    lat: dict[str, list[float]] = {"write": [], "search": []}
    errors: dict[str, int] = {"write": 0, "search": 0}
    acked: list[tuple[str, str]] = []  # (document id, marker)
    error_samples: list[str] = []
    lock = threading.Lock()
    budget = [args.max_requests]
    stop_at = time.monotonic() + args.duration
    base = f"/v1/namespaces/{NAMESPACE}"

    def take() -> bool:
        with lock:
            if budget[0] <= 0 or time.monotonic() >= stop_at:
                return False
            budget[0] -= 1
            return True

    def client(n: int) -> None:
        rng = random.Random(args.seed * 1000 + n)
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            while take():
                if rng.random() < args.write_ratio:
                    op = "write"
                    marker = "zq" + uuid.uuid4().hex[:12]
                    text = f"{' '.join(rng.sample(WORDS, 6))} note {marker}"
                    doc_id = f"c{n}-{uuid.uuid4().hex[:8]}"
                    body: dict[str, Any] = {"documents": [{"id": doc_id, "text": text}]}
                    path = base + "/documents"
                else:
                    op = "search"
                    body = {"query": rng.choice(SEARCHES), "k": 5}
                    path = base + "/search"
                t0 = time.perf_counter()
                try:
                    r = http.post(path, json=body)
                    ok = r.status_code == 200
                    detail = f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, repr(exc)
                dt = time.perf_counter() - t0
                with lock:
                    if ok:
                        lat[op].append(dt)
                        if op == "write":
                            acked.append((r.json()["ids"][0], marker))
                    else:
                        errors[op] += 1
                        if len(error_samples) < 5:
                            error_samples.append(f"{op}: {detail}")

    # The namespace must exist before searches: one acknowledged write first (not timed).
    seed_marker = "zq" + uuid.uuid4().hex[:12]
    r = httpx.post(
        url + base + "/documents",
        json={"documents": [{"id": "seed", "text": f"seed document {seed_marker}"}]},
        headers=headers,
        timeout=120,
    )
    r.raise_for_status()
    acked.append(("seed", seed_marker))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0

    # Every acknowledged write must be found by its marker.
    lost: list[str] = []
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        for doc_id, marker in acked:
            r = http.post(base + "/search", json={"query": marker, "k": 1, "mode": "keyword"})
            hits = r.json().get("results", []) if r.status_code == 200 else []
            if not hits or hits[0].get("doc_id") != doc_id or marker not in hits[0]["text"]:
                lost.append(doc_id)

    done = sum(len(v) for v in lat.values()) + sum(errors.values())
    ms = {
        op: {
            "count": len(v),
            "p50_ms": round(1000 * (percentile(v, 0.5) or 0), 1),
            "p99_ms": round(1000 * (percentile(v, 0.99) or 0), 1),
        }
        for op, v in lat.items()
    }
    return {
        "requests": done,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(done / elapsed, 2) if elapsed else None,
        "writes_per_s": round(len(lat["write"]) / elapsed, 2) if elapsed else None,
        "latency": ms,
        "errors": errors,
        "error_samples": error_samples,
        "acknowledged_writes": len(acked),
        "lost_writes": len(lost),
        "lost_ids": lost[:20],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_serve"]:
        serve(argv[1], argv[2], int(argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("ENGRAM_TEST_PG_URL"))
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    p.add_argument("--max-requests", type=int, default=2000, help="request cap (default 2000)")
    p.add_argument("--write-ratio", type=float, default=0.5)
    p.add_argument("--embedder", choices=["local", "onnx"], default="local")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), "
        f"Python {platform.python_version()}",
        "command": "python bench/load.py " + " ".join(argv),
        "clients": args.clients,
        "duration_s": args.duration,
        "max_requests": args.max_requests,
        "write_ratio": args.write_ratio,
        "embedder": args.embedder,
        "results": {},
    }
    failed = False
    for backend in backends:
        with (
            fresh_location(backend, args.pg_url) as location,
            server(location, args.embedder) as (url, key),
        ):
            res = run_load(url, key, args)
        report["results"][backend] = res
        failed |= res["lost_writes"] > 0 or sum(res["errors"].values()) > 0
        print(f"{backend}: {json.dumps(res)}", file=sys.stderr, flush=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
