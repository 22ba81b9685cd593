"""PostgreSQL keyword search: candidate tiers against ranking every match, on a scale store.

    python -m bench.pg_keyword --schema bench_n100000 --data /tmp/engram-bench/data/n100000 \\
        [--bm25s /tmp/engram-bench/stores/n100000/bm25s] [--queries 100]

Opens the ``postgres`` engine's schema (written by ``bench/scale.py``), runs the first
``--queries`` keyword queries both ways back to back (the retrieval backend's tiers; the old
query, ``ts_rank`` over every match), and prints JSON: p50 of each, the tiers' top-10 overlap
with full ranking and, with ``--bm25s``, each one's overlap with bm25s (BM25) on the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

from engram.config import Config
from engram.retrieval.postgres import PostgresRetrieval, query_terms
from engram.store import open_store

FULL = (
    "SELECT c.id FROM chunks c CROSS JOIN to_tsquery('english', %s) q WHERE c.tsv @@ q "
    "ORDER BY ts_rank(c.tsv, q, 1) DESC, c.id LIMIT 10"
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--schema", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--bm25s")
    p.add_argument("--queries", type=int, default=100)
    a = p.parse_args()
    url = os.environ.get("ENGRAM_BENCH_PG_URL") or os.environ["ENGRAM_TEST_PG_URL"]
    url += "?options=" + quote(f"-csearch_path={a.schema},public", safe="")
    store = open_store(url, create=False)
    retrieval = PostgresRetrieval(store, Config())
    everything = retrieval.scope(None, None)
    texts = json.loads((Path(a.data) / "queries.json").read_text())["text"][: a.queries]
    bm = None
    if a.bm25s:
        from bench.engines import Bm25sEngine

        bm = Bm25sEngine(a.bm25s)
        bm.open()

    def rows(ids: list[int]) -> set[int]:  # chunk ids -> row numbers (the documents' keys)
        hits = store.hit_rows(ids)
        return {int(hits[i]["doc_id"]) for i in ids if i in hits}

    t_tiers, t_full, same, bm_tiers, bm_full = [], [], [], [], []
    for q in texts:
        t = time.perf_counter()
        tiers = [i for i, _ in retrieval.keyword(q, 10, everything)]
        t_tiers.append(time.perf_counter() - t)
        t = time.perf_counter()
        full = [r[0] for r in store.query(FULL, (" | ".join(query_terms(q)),))]
        t_full.append(time.perf_counter() - t)
        same.append(len(set(tiers) & set(full)) / max(1, len(full)))
        if bm is not None:
            ref = set(bm.keyword(q, 10))
            bm_tiers.append(len(ref & rows(tiers)) / 10)
            bm_full.append(len(ref & rows(full)) / 10)
    out = {
        "queries": len(texts),
        "p50_ms": {
            "tiers": round(1000 * float(np.median(t_tiers)), 1),
            "full_ts_rank": round(1000 * float(np.median(t_full)), 1),
        },
        "tiers_overlap@10_with_full_ts_rank": round(float(np.mean(same)), 3),
    }
    if bm is not None:
        out["overlap@10_with_bm25s"] = {
            "tiers": round(float(np.mean(bm_tiers)), 3),
            "full_ts_rank": round(float(np.mean(bm_full)), 3),
        }
    print(json.dumps(out))
    store.close()


if __name__ == "__main__":
    main()
