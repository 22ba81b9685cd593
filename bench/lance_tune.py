"""Pick LanceDB's vector index settings for the scale runs: build each index type on one data
folder and measure build time, recall@10 against exact search, and single-query latency::

    python -m bench.lance_tune --data /tmp/engram-bench/data/n100000 --types IVF_PQ,IVF_HNSW_SQ
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LANCE_LOG", "error")

import numpy as np

from bench import data as datamod
from bench.common import now, percentiles, recall_at_k
from bench.engines import LanceEngine


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--work", default="/tmp/engram-bench/lance-tune")
    p.add_argument("--types", default="IVF_PQ,IVF_HNSW_SQ,IVF_FLAT")
    p.add_argument(
        "--grid",
        default='{"nprobes": [10, 20, 50], "ef": [64, 128, 256], "refine_factor": [null, 10]}',
    )
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--reuse", action="store_true", help="keep stores built before")
    a = p.parse_args()
    d = datamod.load(a.data)
    grid = json.loads(a.grid)
    out = []
    for t in a.types.split(","):
        store = Path(a.work) / t
        eng = LanceEngine(store, index_type=t, min_rows_for_index=0)
        b = {"reused": True} if a.reuse and store.exists() else eng.build(a.data)
        print(t, "build", b, flush=True)
        for nprobes in grid["nprobes"]:
            for ef in grid["ef"] if t.startswith("IVF_HNSW") else [None]:
                for rf in grid["refine_factor"] if "PQ" in t or "SQ" in t else [None]:
                    if ef and rf and ef < 10 * rf:
                        continue  # LanceDB: ef must be >= k * refine_factor
                    eng = LanceEngine(
                        store, index_type=t, nprobes=nprobes, ef=ef or 0, refine_factor=rf
                    )
                    eng.open()
                    rec, ms = [], []
                    for i in range(a.queries):
                        t0 = now()
                        rows = eng.vector(d["qvecs"][i])
                        ms.append((now() - t0) * 1000)
                        rec.append(recall_at_k(rows, d["truth"][i]))
                    r = {
                        "type": t,
                        "nprobes": nprobes,
                        "ef": ef,
                        "refine_factor": rf,
                        "recall@10": round(float(np.mean(rec)), 4),
                        **percentiles(ms),
                        "build": b,
                    }
                    out.append(r)
                    print(json.dumps({k: v for k, v in r.items() if k != "build"}), flush=True)
    Path(a.work, "tune.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
