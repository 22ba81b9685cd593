"""Scale benchmark: Engram against LanceDB, SQLite FTS5 + numpy, and bm25s on the same rows.

One command per scale::

    python -m bench.scale --scale 100000            # generate data, build, reopen, query
    python -m bench.scale --scale 1000000 --queries 200 --engram '{"hnsw_ef_search": 256}'

Steps (each build and each reopen runs in its own process, so its peak RSS is its own):

1. ``bench/data.py`` writes the rows (cached under ``--work``/data).
2. build: each engine ingests the rows (store-only, precomputed vectors) and builds its indexes;
   wall time, peak RSS and disk size are recorded.
3. reopen: a fresh process opens the store and answers one hybrid query (time to first answer),
   then 50 queries of each kind; its peak RSS is the serving footprint.
4. query: one process opens every engine and runs the queries one at a time, interleaved (for
   each operation, query i goes to every engine in an order rotated by i), after a warm-up.
   Latency p50/p95/p99, vector recall@10 against exact search, filtered queries' result counts.

Results go to ``--work``/results/scale-<N>.json; ``python -m bench.report`` turns every such file
into the Markdown table, plots and ``docs/benchmarks.json``.

Engine variants: ``--engines engram,engram@ef256,lancedb`` with ``--variant
'ef256={"hnsw_ef_search": 256}'``; a variant reuses its base engine's store unless its options
change how the store is built (``"build": true``) or name another store folder
(``"store": "engram-m32"``, e.g. one written by ``bench/rebuild_hnsw.py``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench import data as datamod
from bench.common import (
    disk_bytes,
    emit,
    machine,
    now,
    parse_result,
    peak_rss_mib,
    percentiles,
    recall_at_k,
    rss_mib,
    versions,
)
from bench.engines import K, make

OPS = ("keyword", "vector", "hybrid", "hybrid_filtered", "vector_filtered")
DEFAULT_ENGINES = "engram,lancedb,fts5,bm25s"


def base_name(spec: str) -> str:
    return spec.split("@", 1)[0]


def engine_options(spec: str, args: argparse.Namespace) -> dict:
    base = base_name(spec)
    opts = dict(json.loads(getattr(args, base.replace("-", "_"), None) or "{}"))
    if "@" in spec:
        variants = dict(v.split("=", 1) for v in args.variant or [])
        opts.update(json.loads(variants[spec.split("@", 1)[1]]))
    return opts


def store_dir(work: Path, scale: int, spec: str, opts: dict) -> Path:
    name = opts.get("store") or (spec if opts.get("build") else base_name(spec))
    return work / "stores" / f"n{scale}" / name.replace("@", "-")


def _clean(opts: dict) -> dict:
    return {k: v for k, v in opts.items() if k not in ("build", "store")}


# -- workers (run in child processes) ----------------------------------------------------------
def worker_build(a: argparse.Namespace) -> None:
    opts = json.loads(a.options)
    eng = make(base_name(a.engine), a.store, _clean(opts))
    rss0 = peak_rss_mib()
    out = eng.build(a.data)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out.update(
        {
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "rss_at_start_mib": round(rss0, 1),
            # a database engine reports its tables' size; files otherwise
            "disk_bytes": out.pop("db_bytes", None) or disk_bytes(a.store),
            "settings": eng.settings(),
        }
    )
    emit(out)


def worker_reopen(a: argparse.Namespace) -> None:
    opts = json.loads(a.options)
    d = datamod.load(a.data)
    eng = make(base_name(a.engine), a.store, _clean(opts))
    ti = now()
    eng.preload()
    import_s = now() - ti
    rss0 = rss_mib()
    t0 = now()
    eng.open()
    t1 = now()
    op = "hybrid" if "hybrid" in eng.ops else eng.ops[0]
    eng.run(op, d["q_text"][0], d["qvecs"][0], d["q_tenant"][0])
    t2 = now()
    first = {
        "import_s": import_s,
        "open_s": t1 - t0,
        "first_query_ms": (t2 - t1) * 1000,
        "open_plus_first_s": t2 - t0,
    }
    rss_first = rss_mib()
    for op in eng.ops:
        for i in range(1, min(51, len(d["q_text"]))):
            eng.run(op, d["q_text"][i], d["qvecs"][i], d["q_tenant"][i])
    first.update(
        {
            "rss_before_open_mib": round(rss0, 1),
            "rss_after_first_mib": round(rss_first, 1),
            "rss_after_50_each_mib": round(rss_mib(), 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
        }
    )
    eng.close()
    emit(first)


def worker_query(a: argparse.Namespace) -> None:
    specs = json.loads(a.specs)  # [[spec, store, options], ...]
    d = datamod.load(a.data)
    engines = []
    for spec, store, opts in specs:
        e = make(base_name(spec), store, _clean(opts))
        e.label = spec
        t0 = now()
        e.open()
        e.open_s = now() - t0
        engines.append(e)
    nq = len(d["q_text"])
    warm = min(a.warmup, nq // 3)
    idx = list(range(warm, nq))
    tenants = d["tenants"]
    lat: dict[str, dict[str, list[float]]] = {e.label: {} for e in engines}
    cpu: dict[str, dict[str, list[float]]] = {e.label: {} for e in engines}
    res: dict[str, dict[str, list[list[int]]]] = {e.label: {} for e in engines}
    used: dict[str, dict[str, list[int]]] = {e.label: {} for e in engines}
    batch: dict[str, dict[str, float]] = {e.label: {} for e in engines}  # queries per second
    t_start = time.time()
    for op in OPS:
        live = [e for e in engines if op in e.ops]
        for e in live:  # warm-up, not recorded
            for i in range(warm):
                e.run(op, d["q_text"][i], d["qvecs"][i], d["q_tenant"][i])
            lat[e.label][op], cpu[e.label][op], res[e.label][op] = [], [], []
            used[e.label][op] = []
        gc.collect()
        spent = {e.label: 0.0 for e in live}
        for j, i in enumerate(idx):
            rot = j % len(live)
            for e in live[rot:] + live[:rot]:
                if spent[e.label] > a.budget_s:
                    continue  # this engine is too slow for this operation: stop sampling it
                c0 = time.process_time()
                t0 = now()
                rows = e.run(op, d["q_text"][i], d["qvecs"][i], d["q_tenant"][i])
                dt = (now() - t0) * 1000
                cpu[e.label][op].append((time.process_time() - c0) * 1000)
                spent[e.label] += dt / 1000
                lat[e.label][op].append(dt)
                res[e.label][op].append(rows)
                used[e.label][op].append(i)
        # Batch: the same queries back to back per engine (no interleaving): throughput.
        for e in live:
            todo = used[e.label][op]
            if not todo:
                continue
            t0 = now()
            for i in todo:
                e.run(op, d["q_text"][i], d["qvecs"][i], d["q_tenant"][i])
            batch[e.label][op] = len(todo) / (now() - t0)
        print(f"  {op}: done ({time.time() - t_start:.0f}s)", file=sys.stderr, flush=True)
    out = {}
    ref = (
        dict(
            zip(
                used.get("bm25s", {}).get("keyword", []),
                res.get("bm25s", {}).get("keyword", []),
                strict=True,
            )
        )
        or None
    )
    for e in engines:
        eo = {"open_s_in_query_process": round(e.open_s, 3)}
        for op, ms in lat[e.label].items():
            r = {
                **percentiles(ms),
                "cpu_ms_mean": round(float(np.mean(cpu[e.label][op])), 3) if ms else None,
                "batch_qps": round(batch[e.label][op], 1) if op in batch[e.label] else None,
            }
            rows = res[e.label][op]
            idx = used[e.label][op]
            if op == "vector":
                r["recall@10"] = round(
                    float(
                        np.mean(
                            [recall_at_k(x, d["truth"][i]) for x, i in zip(rows, idx, strict=False)]
                        )
                    ),
                    4,
                )
            if op == "vector_filtered":
                r["recall@10"] = round(
                    float(
                        np.mean(
                            [
                                recall_at_k(x, d["truth_filtered"][i])
                                for x, i in zip(rows, idx, strict=False)
                            ]
                        )
                    ),
                    4,
                )
            if op in ("hybrid_filtered", "vector_filtered"):
                sizes = np.bincount(tenants.astype(np.int64))
                r["full_k_share"] = round(  # k results whenever the tenant holds k rows
                    float(
                        np.mean(
                            [
                                len(x) == min(K, sizes[d["q_tenant"][i]])
                                for x, i in zip(rows, idx, strict=False)
                            ]
                        )
                    ),
                    4,
                )
                r["wrong_tenant_hits"] = int(
                    sum(
                        int(np.sum(tenants[np.array(x, dtype=np.int64)] != d["q_tenant"][i]))
                        for x, i in zip(rows, idx, strict=False)
                        if x
                    )
                )
            if op == "keyword" and ref is not None and e.label != "bm25s":
                pairs = [(x, ref[i]) for x, i in zip(rows, idx, strict=False) if i in ref]
                r["overlap@10_with_bm25s"] = round(
                    float(np.mean([len(set(x) & set(y)) / max(1, len(y)) for x, y in pairs])), 4
                )
            eo[op] = r
        out[e.label] = eo
        e.close()
    out["_meta"] = {"queries_measured": len(idx), "warmup": warm, "seconds": time.time() - t_start}
    emit(out)


# -- driver -----------------------------------------------------------------------------------
def worker_args(worker: str, spec: str, store: str, folder: Path, opts: dict) -> list[str]:
    """The command line of a ``build`` or ``reopen`` worker for one engine."""
    return [worker, "--engine", spec, "--store", store, "--data", str(folder),
            "--options", json.dumps(opts)]  # fmt: skip


def child(cmd: list[str], log) -> dict:
    t0 = now()
    p = subprocess.run(
        [sys.executable, "-m", "bench.scale", *cmd],
        capture_output=True,
        text=True,
        cwd=str(Path(__file__).resolve().parents[1]),
        env={**os.environ, "PYTHONUNBUFFERED": "1", "LANCE_LOG": "error"},
    )
    log.write(p.stderr)
    log.flush()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{p.stderr[-4000:]}")
    out = parse_result(p.stdout)
    out["process_wall_s"] = round(now() - t0, 2)
    return out


def run(a: argparse.Namespace) -> Path:
    work = Path(a.work)
    (work / "results").mkdir(parents=True, exist_ok=True)
    t0 = now()
    folder = datamod.generate(a.scale, work / "data", a.queries)
    gen_s = now() - t0
    specs = [s for s in a.engines.split(",") if s]
    plan = []
    for spec in specs:
        try:
            opts = engine_options(spec, a)
        except KeyError as exc:
            raise SystemExit(f"no --variant for {spec}") from exc
        if base_name(spec) == "lancedb":
            try:
                import lancedb  # noqa: F401
            except ImportError:
                print("lancedb not importable: skipped", file=sys.stderr)
                continue
        plan.append((spec, str(store_dir(work, a.scale, spec, opts)), opts))
    result_path = work / "results" / f"scale-{a.scale}{a.tag}.json"
    old = json.loads(result_path.read_text()) if result_path.exists() else {}
    result = {
        "scale": a.scale,
        "data": {"folder": str(folder), **datamod.describe(folder)},
        "generate_s": round(gen_s, 1),
        "machine": machine(),
        "versions": versions(),
        "engines": {},
        "build": old.get("build", {}) if a.skip_build else {},
    }
    log = open(work / "results" / f"scale-{a.scale}{a.tag}.log", "a")  # noqa: SIM115 - open all run
    log.write(f"=== {time.strftime('%F %T')} {' '.join(sys.argv)}\n")
    for spec, store, opts in plan:
        result["engines"][spec] = {"options": opts, "store": store}
        builds = opts.get("build") or ("@" not in spec and not opts.get("store"))
        record = work / "results" / f"build-{a.scale}-{spec.replace('@', '-')}.json"
        if builds and a.resume and record.exists() and Path(store).exists():
            result["build"][spec] = json.loads(record.read_text())
            print(f"[{a.scale}] build {spec}: kept from {record.name}", file=sys.stderr)
        elif builds and not a.skip_build:
            print(f"[{a.scale}] build {spec} ...", file=sys.stderr, flush=True)
            b = child(worker_args("build", spec, store, folder, opts), log)
            result["build"][spec] = b
            record.write_text(json.dumps(b, indent=1))  # survives a crash of this driver
            print(f"[{a.scale}] build {spec}: {b['build_s']:.1f}s", file=sys.stderr, flush=True)
    result["build"] = {
        k: v for k, v in result["build"].items() if k in dict((s, 1) for s, _, _ in plan)
    }
    result["reopen"] = {}
    for spec, store, opts in plan:
        print(f"[{a.scale}] reopen {spec} ...", file=sys.stderr, flush=True)
        result["reopen"][spec] = child(worker_args("reopen", spec, store, folder, opts), log)
    print(f"[{a.scale}] query {len(plan)} engines ...", file=sys.stderr, flush=True)
    result["query"] = child(
        [
            "query",
            "--specs",
            json.dumps(plan),
            "--data",
            str(folder),
            "--warmup",
            str(a.warmup),
            "--budget-s",
            str(a.budget_s),
        ],
        log,
    )
    result["finished"] = time.strftime("%F %T")
    result_path.write_text(json.dumps(result, indent=1))
    print(f"[{a.scale}] wrote {result_path}", file=sys.stderr)
    return result_path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd")
    for name in ("build", "reopen"):
        w = sub.add_parser(name)
        w.add_argument("--engine", required=True)
        w.add_argument("--store", required=True)
        w.add_argument("--data", required=True)
        w.add_argument("--options", default="{}")
    q = sub.add_parser("query")
    q.add_argument("--specs", required=True)
    q.add_argument("--data", required=True)
    q.add_argument("--warmup", type=int, default=20)
    q.add_argument("--budget-s", type=float, default=300.0)
    p.add_argument("--scale", type=int)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument(
        "--budget-s",
        type=float,
        default=300.0,
        help="stop timing an engine's operation after this many seconds",
    )
    p.add_argument("--work", default="/tmp/engram-bench")
    p.add_argument("--engines", default=DEFAULT_ENGINES)
    p.add_argument("--tag", default="", help="suffix for the result file name")
    p.add_argument("--skip-build", action="store_true", help="reuse stores built before")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep each build recorded in results/build-*.json whose store exists",
    )
    for base in ("engram", "lancedb", "fts5", "bm25s"):
        p.add_argument(f"--{base}", help=f"JSON options for {base}")
    p.add_argument("--variant", action="append", help="LABEL=JSON options for ENGINE@LABEL")
    a = p.parse_args(argv)
    if a.cmd == "build":
        worker_build(a)
    elif a.cmd == "reopen":
        worker_reopen(a)
    elif a.cmd == "query":
        worker_query(a)
    else:
        if not a.scale:
            p.error("--scale is required")
        run(a)


if __name__ == "__main__":
    main()
