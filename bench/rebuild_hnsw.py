"""Copy a benchmark store and rebuild only its HNSW graph with other build settings, through
Engram's own API (``FlatVectorIndex.build_hnsw`` with ``Config.hnsw_m`` /
``hnsw_ef_construction``), then measure recall@10 against exact search for several
``ef_search`` values::

    python -m bench.rebuild_hnsw --scale 1000000 --m 32 --efc 200 --name engram-m32

The copy lands beside the original (``--work``/stores/n<scale>/<name>) so ``bench.scale
--skip-build`` can query it as engine variant ``engram@<label>`` with ``"store": "<name>"``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench import data as datamod
from bench.common import peak_rss_mib, recall_at_k


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--work", default="/tmp/engram-bench")
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--efc", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default=None)
    p.add_argument("--ef", default="64,128,200,256,400,512")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--sweep-only", action="store_true", help="measure the stored graph as is")
    a = p.parse_args(argv)
    from engram.embed.precomputed import PrecomputedEmbedder
    from engram.memory import Memory

    work = Path(a.work)
    src = work / "stores" / f"n{a.scale}" / "engram"
    copy_s = build_s = save_s = None
    if a.sweep_only:
        dst = src
        mem = Memory(dst / "engram.db", embedder=PrecomputedEmbedder(384, "synthetic-384"))
        vi = mem.vector
        if vi.hnsw is None:
            raise SystemExit(f"{dst} holds no HNSW graph")
        a.m, a.efc = vi.hnsw.m, vi.hnsw.ef_construction
    else:
        dst = work / "stores" / f"n{a.scale}" / (a.name or f"engram-m{a.m}-efc{a.efc}")
        if dst.exists():
            shutil.rmtree(dst)
        t0 = time.perf_counter()
        shutil.copytree(src, dst)
        copy_s = time.perf_counter() - t0
        mem = Memory(
            dst / "engram.db",
            embedder=PrecomputedEmbedder(384, "synthetic-384"),
            hnsw_m=a.m,
            hnsw_ef_construction=a.efc,
            threads=a.threads,
        )
        vi = mem.vector
        t0 = time.perf_counter()
        vi.build_hnsw()
        build_s = time.perf_counter() - t0
        vi.dirty = True
        t0 = time.perf_counter()
        mem.save()
        save_s = time.perf_counter() - t0
    d = datamod.load(work / "data" / f"n{a.scale}")
    sweep = []
    for ef in [int(x) for x in a.ef.split(",")]:
        vi.hnsw.ef_search = ef
        rec, ms = [], []
        for i in range(min(a.queries, len(d["qvecs"]))):
            t1 = time.perf_counter()
            labels, _ = vi.hnsw.search(d["qvecs"][i], 10)
            ms.append((time.perf_counter() - t1) * 1000)
            rows = [int(x) - 1 for x in labels]  # chunk ids are row + 1 in these stores
            rec.append(recall_at_k(rows, d["truth"][i]))
        sweep.append(
            {
                "ef": ef,
                "recall@10": round(float(np.mean(rec)), 4),
                "zero_recall_queries": int(np.sum(np.array(rec) == 0)),
                "knn_p50_ms": round(float(np.percentile(ms, 50)), 3),
            }
        )
        print(json.dumps(sweep[-1]), flush=True)
    mem.close()
    out = {
        "scale": a.scale,
        "m": a.m,
        "ef_construction": a.efc,
        "threads": a.threads,
        "copy_s": copy_s and round(copy_s, 1),
        "hnsw_build_s": build_s and round(build_s, 1),
        "save_s": save_s and round(save_s, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "sweep": sweep,
    }
    path = work / "results" / f"hnsw-{a.scale}-m{a.m}-efc{a.efc}.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "sweep"}))


if __name__ == "__main__":
    main()
