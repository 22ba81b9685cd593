"""Retrieval quality on a BEIR folder (SciFact): keyword search of Engram and its peers, and,
given a store kept by ``engram eval beir --keep-store``, Engram's vector and hybrid modes::

    python -m bench.quality                                   # keyword only, no embedding
    python -m bench.quality --engram-store /tmp/scifact.db    # + vector, hybrid blend/rrf

Keyword search needs no model, so every engine indexes whole documents (title + text, one row
per document, as BEIR does) in a few seconds. Engram gets the documents through
``import_vectors`` (one chunk per document) with placeholder vectors: only its BM25 index is
queried. Scores: nDCG@10, recall@100 (trec_eval conventions, ``engram.evaluate.metrics``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LANCE_LOG", "error")

import numpy as np

from bench.common import now, percentiles

SCIFACT = "/work/shared/data/beir/scifact"


def load(folder: str, split: str = "test", limit: int | None = None):
    from engram.evaluate.beir import load_beir

    docs, queries, qrels = load_beir(folder, split)
    docs = list(docs)
    if limit:
        queries = dict(list(queries.items())[:limit])
    return docs, queries, qrels


def score(rankings: dict[str, list[str]], qrels) -> dict[str, float]:
    from engram.evaluate.metrics import ndcg_at_k, recall_at_k

    n = len(rankings)
    return {
        "ndcg@10": round(sum(ndcg_at_k(r, qrels[q], 10) for q, r in rankings.items()) / n, 4),
        "recall@100": round(sum(recall_at_k(r, qrels[q], 100) for q, r in rankings.items()) / n, 4),
    }


def run_engine(name: str, docs, queries, tmp: Path, k: int = 100) -> tuple[dict, dict]:
    ids = [d.id for d in docs]
    texts = [d.text for d in docs]
    t0 = now()
    if name == "engram":
        from engram.embed.precomputed import PrecomputedEmbedder
        from engram.memory import Memory

        mem = Memory(tmp / "engram.db", embedder=PrecomputedEmbedder(8, "placeholder"))
        vecs = np.tile(np.eye(8, dtype=np.float32)[0], (len(docs), 1))
        mem.import_vectors(docs, vecs)
        mem.save()

        def search(q):
            return [h.doc_id for h in mem.search(q, k, mode="keyword", candidates=k)]

    elif name == "bm25s":
        import bm25s
        import Stemmer

        stem = Stemmer.Stemmer("english")
        model = bm25s.BM25(k1=0.9, b=0.4)
        model.index(
            bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False),
            show_progress=False,
        )

        def search(q):
            tok = bm25s.tokenize(
                [q], stopwords="en", stemmer=stem, return_ids=False, show_progress=False
            )
            rows, _ = model.retrieve(tok, k=min(k, len(ids)), show_progress=False, n_threads=1)
            return [ids[int(r)] for r in rows[0]]

    elif name == "fts5":
        conn = sqlite3.connect(tmp / "fts.db")
        conn.execute("CREATE VIRTUAL TABLE docs USING fts5(text, tokenize='porter unicode61')")
        with conn:
            conn.executemany("INSERT INTO docs(rowid, text) VALUES (?,?)", enumerate(texts))

        def search(q):
            from engram.index.analyzer import tokenize

            words = " OR ".join(f'"{w}"' for w in dict.fromkeys(tokenize(q)))
            if not words:
                return []
            rows = conn.execute(
                "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT ?",
                (words, k),
            ).fetchall()
            return [ids[r[0]] for r in rows]

    elif name == "lancedb":
        import lancedb
        import pyarrow as pa

        db = lancedb.connect(str(tmp / "lance"))
        tbl = db.create_table("docs", pa.table({"id": ids, "text": texts}))
        tbl.create_fts_index("text", use_tantivy=False)

        def search(q):
            rows = tbl.search(q, query_type="fts").select(["id"]).limit(k).to_list()
            return [r["id"] for r in rows]

    else:
        raise ValueError(name)
    build_s = now() - t0
    rankings, ms = {}, []
    for qid, text in queries.items():
        t1 = now()
        rankings[qid] = search(text)
        ms.append((now() - t1) * 1000)
    return rankings, {"build_s": round(build_s, 2), **percentiles(ms)}


def run_store(path: str, queries, qrels) -> list[dict]:
    """Engram's modes on a kept store (built with real embeddings by ``engram eval beir``)."""
    from engram.evaluate.beir import doc_ranking
    from engram.memory import Memory

    out = []
    with Memory(path) as mem:
        for mode, opts in (
            ("keyword", {}),
            ("vector", {}),
            ("hybrid", {"fusion": "blend", "alpha": 0.5}),
            ("hybrid", {"fusion": "rrf"}),
        ):
            rankings = {
                q: doc_ranking(mem.search(t, k=300, mode=mode, candidates=300, **opts))
                for q, t in queries.items()
            }
            out.append({"engine": "engram", "mode": mode, **opts, **score(rankings, qrels)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folder", default=SCIFACT)
    p.add_argument("--split", default="test")
    p.add_argument("--engines", default="engram,bm25s,fts5,lancedb")
    p.add_argument("--limit", type=int)
    p.add_argument("--engram-store", help="a store kept by `engram eval beir --keep-store`")
    p.add_argument("--out", default="/tmp/engram-bench/results/quality.json")
    a = p.parse_args()
    docs, queries, qrels = load(a.folder, a.split, a.limit)
    rows = []
    for name in a.engines.split(","):
        if name == "lancedb":
            try:
                import lancedb  # noqa: F401
            except ImportError:
                continue
        tmp = Path(tempfile.mkdtemp(prefix=f"q-{name}-"))
        try:
            rankings, speed = run_engine(name, docs, queries, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        row = {"engine": name, "mode": "keyword", **score(rankings, qrels), **speed}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.engram_store:
        for row in run_store(a.engram_store, queries, qrels):
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(
        json.dumps(
            {
                "folder": a.folder,
                "split": a.split,
                "queries": len(queries),
                "docs": len(docs),
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
