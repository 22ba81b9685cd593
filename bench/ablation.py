"""Each proposed change alone: stock Engram against Engram with one prototype from
``bench/patches.py`` (and all of them), same store, same process, queries interleaved::

    python -m bench.ablation --scale 100000
    python -m bench.ablation --scale 1000000 --variants meta_index,maxscore,all --queries 150

Reads a store built by ``bench.scale`` (``--work``/stores/n<scale>/engram). Writes
``--work``/results/ablation-<scale>.json: per variant and operation, wall p50/p95/p99, CPU per
query, whether results equal stock's, and vector recall@10.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench import data as datamod
from bench.common import machine, now, percentiles, recall_at_k
from bench.engines import make

OPS = ("keyword", "vector", "hybrid", "hybrid_filtered", "vector_filtered")
DEFAULT = "maxscore,meta_index,exact_gather,hits,single_k,all"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--work", default="/tmp/engram-bench")
    p.add_argument("--variants", default=DEFAULT)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--ops", default=",".join(OPS))
    p.add_argument("--engram", default="{}", help="JSON Config options for every variant")
    a = p.parse_args(argv)
    work = Path(a.work)
    d = datamod.load(work / "data" / f"n{a.scale}")
    store = work / "stores" / f"n{a.scale}" / "engram"
    base = json.loads(a.engram)
    engines = {"stock": make("engram", store, base)}
    for v in a.variants.split(","):
        engines[v] = make("engram", store, {**base, "patch": v})
    for e in engines.values():
        e.open()
    names = list(engines)
    nq = min(a.queries, len(d["q_text"]))
    out: dict = {"scale": a.scale, "queries": nq, "machine": machine(), "ops": {}}
    for op in a.ops.split(","):
        for e in engines.values():  # warm-up
            for i in range(5):
                e.run(op, d["q_text"][i], d["qvecs"][i], d["q_tenant"][i])
        wall = {n: [] for n in names}
        cpu = {n: [] for n in names}
        res = {n: [] for n in names}
        for i in range(nq):
            rot = i % len(names)
            for n in names[rot:] + names[:rot]:
                c0, t0 = time.process_time(), now()
                rows = engines[n].run(op, d["q_text"][i], d["qvecs"][i], d["q_tenant"][i])
                wall[n].append((now() - t0) * 1000)
                cpu[n].append((time.process_time() - c0) * 1000)
                res[n].append(rows)
        out["ops"][op] = {}
        for n in names:
            r = {
                **percentiles(wall[n]),
                "cpu_ms_mean": round(float(np.mean(cpu[n])), 3),
                "same_as_stock": sum(x == y for x, y in zip(res[n], res["stock"], strict=True)),
            }
            truth = {"vector": d["truth"], "vector_filtered": d["truth_filtered"]}.get(op)
            if truth is not None:
                r["recall@10"] = round(
                    float(np.mean([recall_at_k(x, truth[i]) for i, x in enumerate(res[n])])), 4
                )
            out["ops"][op][n] = r
        line = ", ".join(
            f"{n} {out['ops'][op][n]['p50_ms']:.2f}/{out['ops'][op][n]['cpu_ms_mean']:.2f}"
            for n in names
        )
        print(f"{op}: p50/CPU ms  {line}", flush=True)
    for e in engines.values():
        e.close()
    path = work / "results" / f"ablation-{a.scale}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
