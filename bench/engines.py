"""Benchmark adapters: Engram and its peers behind one small interface.

Every engine indexes the rows of one ``bench/data.py`` folder (text, 384-d vector, tenant) and
answers, for row numbers 0..N-1 (``k`` of them, best first):

* ``keyword(text)``: BM25 / full-text ranking,
* ``vector(vec)``: nearest vectors by inner product (unit vectors, so cosine),
* ``hybrid(text, vec)``: both, fused by the engine's own default fusion,
* ``hybrid_filtered(text, vec, tenant)``: the same among rows of one tenant (1% of rows),
* ``vector_filtered(vec, tenant)``: for the recall of filtered vector search.

Each answer fetches the hits' text (what a caller needs to build a prompt), not ids alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import now, read_vectors
from bench.data import iter_texts

K = 10
DIM = 384


def cpu_s() -> float:
    """CPU time of this process (user + system, all threads)."""
    t = os.times()
    return t.user + t.system


def tenant_name(t: int) -> str:
    return f"t{int(t):03d}"


class Engine:
    name = "base"
    ops = ("keyword", "vector", "hybrid", "hybrid_filtered", "vector_filtered")

    def __init__(self, store: str | Path, **options: Any):
        self.store = Path(store)
        self.options = options

    libraries: tuple[str, ...] = ()

    def preload(self) -> None:
        """Import the engine's libraries (so reopen times exclude Python imports)."""
        import importlib

        for name in self.libraries:
            importlib.import_module(name)

    def build(self, data: str | Path, block: int = 50_000) -> dict[str, float]:
        raise NotImplementedError

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def settings(self) -> dict[str, Any]:
        return dict(self.options)

    def run(self, op: str, text: str, vec: np.ndarray, tenant: int, k: int = K) -> list[int]:
        if op == "keyword":
            return self.keyword(text, k)
        if op == "vector":
            return self.vector(vec, k)
        if op == "hybrid":
            return self.hybrid(text, vec, k)
        if op == "hybrid_filtered":
            return self.hybrid_filtered(text, vec, tenant, k)
        if op == "vector_filtered":
            return self.vector_filtered(vec, tenant, k)
        raise ValueError(op)


# -- Engram -----------------------------------------------------------------------------------
def engram_documents(data: str | Path, block: int):
    """``(documents, vectors)`` blocks of the rows, as Engram ``Document``s with ``tenant``."""
    from engram.types import Document

    tenants = np.load(Path(data) / "tenants.npy")
    for start, texts in iter_texts(data, block):
        docs = [
            Document(
                text=t, id=str(start + i), metadata={"tenant": tenant_name(tenants[start + i])}
            )
            for i, t in enumerate(texts)
        ]
        yield docs, read_vectors(data, start, start + len(texts))


class EngramEngine(Engine):
    """Engram's public API: ``Memory.import_vectors`` and ``Memory.search``.

    Options are ``Config`` fields (``hnsw_ef_search=...``). The tenant key gets an SQL index
    (``Memory.index_metadata``), as LanceDB's tenant column gets a scalar index.
    """

    name = "engram"
    libraries = ("engram.memory", "engram.embed.precomputed", "faiss")

    def _memory(self):
        from engram.embed.precomputed import PrecomputedEmbedder
        from engram.memory import Memory

        return Memory(
            self.store / "engram.db",
            embedder=PrecomputedEmbedder(DIM, "synthetic-384"),
            **self.options,
        )

    def build(self, data, block=50_000):
        if self.store.exists():
            shutil.rmtree(self.store)
        self.store.mkdir(parents=True)
        t0 = now()
        c0 = cpu_s()
        mem = self._memory()
        self._before_load(mem)
        vector_index = getattr(mem.retrieval, "vector_index", None)
        ann = getattr(vector_index, "ann", None)
        if ann in ("auto", "ivf"):  # the inverted lists are built once, after the load
            vector_index.ann = "exact"
        for docs, vecs in engram_documents(data, block):
            mem.import_vectors(docs, vecs)
        t1 = now()
        c1 = cpu_s()
        if ann in ("auto", "ivf"):
            vector_index.ann = ann
        out = self._after_load(mem)
        t2 = now()
        mem.close()
        return {
            "ingest_s": t1 - t0,  # store + keyword index + vector segments, no graph
            "ingest_cpu_s": c1 - c0,
            "index_s": t2 - t1,  # the inverted lists (or the HNSW graph), saved
            "index_cpu_s": cpu_s() - c1,
            "build_s": t2 - t0,
            **out,
        }

    def _before_load(self, mem) -> None:
        mem.index_metadata("tenant")

    def _after_load(self, mem) -> dict[str, Any]:
        done = mem.optimize()  # builds the inverted lists (or HNSW graph) in bulk, saves all
        # the keyword segments the loads left unmerged are merged first: keyword index work
        return {"keyword_merge_s": done.get("keyword_merge_s", 0.0)}

    def open(self):
        self.mem = self._memory()

    def close(self):
        self.mem.close()

    @staticmethod
    def _rows(hits) -> list[int]:
        return [int(h.doc_id) for h in hits]

    def keyword(self, text, k=K):
        return self._rows(self.mem.search(text, k, mode="keyword"))

    def vector(self, vec, k=K):
        return self._rows(self.mem.search("", k, mode="vector", query_vector=vec))

    def hybrid(self, text, vec, k=K):
        return self._rows(self.mem.search(text, k, mode="hybrid", query_vector=vec))

    def hybrid_filtered(self, text, vec, tenant, k=K):
        where = {"tenant": tenant_name(tenant)}
        return self._rows(self.mem.search(text, k, mode="hybrid", where=where, query_vector=vec))

    def vector_filtered(self, vec, tenant, k=K):
        where = {"tenant": tenant_name(tenant)}
        return self._rows(self.mem.search("", k, mode="vector", where=where, query_vector=vec))


# -- LanceDB ----------------------------------------------------------------------------------
class LanceEngine(Engine):
    """LanceDB (embedded): native BM25 full-text index, a vector index, a bitmap index on
    ``tenant``; hybrid search with its default RRF reranker; ``prefilter=True`` for filters.

    Options: ``index_type`` (``IVF_FLAT`` default, see ``bench/lance_tune.py``: the default
    IVF_PQ reached recall@10 0.36 here and IVF_HNSW_SQ took 579 s to build at 100k rows;
    ``none`` for brute force), ``nprobes``,
    ``ef``, ``refine_factor``, ``min_rows_for_index`` (below it: brute force, as LanceDB advises).
    """

    name = "lancedb"
    libraries = ("lancedb", "pyarrow")
    defaults = {
        "index_type": "IVF_FLAT",
        "nprobes": 20,
        "ef": 128,
        "refine_factor": None,
        "min_rows_for_index": 50_000,
        "num_partitions": None,
    }

    def settings(self):
        return {**self.defaults, **self.options}

    def build(self, data, block=50_000):
        import lancedb
        import pyarrow as pa

        s = self.settings()
        if self.store.exists():
            shutil.rmtree(self.store)
        tenants = np.load(Path(data) / "tenants.npy")
        t0 = now()
        db = lancedb.connect(str(self.store))
        schema = pa.schema(
            [
                ("id", pa.int64()),
                ("text", pa.string()),
                ("tenant", pa.string()),
                ("vector", pa.list_(pa.float32(), DIM)),
            ]
        )
        tbl = db.create_table("docs", schema=schema)
        n = 0
        for start, texts in iter_texts(data, block):
            vecs = read_vectors(data, start, start + len(texts))
            ids = np.arange(start, start + len(texts))
            batch = pa.table(
                {
                    "id": pa.array(ids, pa.int64()),
                    "text": pa.array(texts, pa.string()),
                    "tenant": pa.array([tenant_name(t) for t in tenants[ids]], pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(
                        pa.array(vecs.ravel(), pa.float32()), DIM
                    ),
                },
                schema=schema,
            )
            tbl.add(batch)
            n += len(texts)
        t1 = now()
        out = {"ingest_s": t1 - t0}
        tt = now()
        tbl.create_fts_index("text", use_tantivy=False)
        out["fts_index_s"] = now() - tt
        tt = now()
        tbl.create_scalar_index("tenant", index_type="BITMAP")
        out["scalar_index_s"] = now() - tt
        if s["index_type"] != "none" and n >= s["min_rows_for_index"]:
            tt = now()
            kw = {"metric": "dot", "index_type": s["index_type"]}
            if s["num_partitions"]:
                kw["num_partitions"] = s["num_partitions"]
            tbl.create_index(**kw)
            out["vector_index_s"] = now() - tt
        with contextlib.suppress(Exception):  # compaction is optional
            tbl.optimize()
        out["index_s"] = now() - t1
        out["build_s"] = now() - t0
        return out

    def open(self):
        import lancedb

        self.db = lancedb.connect(str(self.store))
        self.tbl = self.db.open_table("docs")
        self.indexed = any("vector" in (i.columns or []) for i in self.tbl.list_indices())

    def _vq(self, q):
        s = self.settings()
        if self.indexed:
            q = q.nprobes(s["nprobes"])
            if s["index_type"].startswith("IVF_HNSW"):
                q = q.ef(s["ef"])
            if s["refine_factor"]:
                q = q.refine_factor(s["refine_factor"])
        return q

    @staticmethod
    def _ids(rows) -> list[int]:
        return [r["id"] for r in rows]

    def keyword(self, text, k=K):
        q = self.tbl.search(text, query_type="fts").select(["id", "text"]).limit(k)
        return self._ids(q.to_list())

    def vector(self, vec, k=K):
        q = self.tbl.search(vec, query_type="vector").select(["id", "text", "_distance"]).limit(k)
        return self._ids(self._vq(q).to_list())

    def hybrid(self, text, vec, k=K):
        q = self.tbl.search(query_type="hybrid").vector(vec).text(text)
        return self._ids(self._vq(q.select(["id", "text"]).limit(k)).to_list())

    def hybrid_filtered(self, text, vec, tenant, k=K):
        q = self.tbl.search(query_type="hybrid").vector(vec).text(text)
        q = q.where(f"tenant = '{tenant_name(tenant)}'", prefilter=True)
        return self._ids(self._vq(q.select(["id", "text"]).limit(k)).to_list())

    def vector_filtered(self, vec, tenant, k=K):
        q = self.tbl.search(vec, query_type="vector").select(["id", "text", "_distance"]).limit(k)
        q = q.where(f"tenant = '{tenant_name(tenant)}'", prefilter=True)
        return self._ids(self._vq(q).to_list())


# -- SQLite FTS5 + exact numpy vectors ---------------------------------------------------------
class Fts5Engine(Engine):
    """The plain baseline: SQLite FTS5 (porter stemmer, ``bm25()``), vectors in a ``.npy`` file
    searched exactly with numpy; hybrid = both top-100 lists, min-max blend (alpha 0.5).

    The tenant is a second FTS5 column, so a filter is part of the MATCH
    (``text: (...) AND tenant: t042``) and FTS5 never joins against another table.
    """

    name = "fts5"
    libraries = ("engram.recall.fusion",)
    candidates = 100

    def build(self, data, block=50_000):
        if self.store.exists():
            shutil.rmtree(self.store)
        self.store.mkdir(parents=True)
        tenants = np.load(Path(data) / "tenants.npy")
        t0 = now()
        conn = sqlite3.connect(self.store / "fts.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE VIRTUAL TABLE docs USING fts5(text, tenant, tokenize='porter unicode61')"
        )
        n = 0
        for start, texts in iter_texts(data, block):
            with conn:
                conn.executemany(
                    "INSERT INTO docs(rowid, text, tenant) VALUES (?,?,?)",
                    ((start + i, t, tenant_name(tenants[start + i])) for i, t in enumerate(texts)),
                )
            n += len(texts)
        t1 = now()
        conn.execute("INSERT INTO docs(docs) VALUES ('optimize')")
        conn.commit()
        conn.close()
        t2 = now()
        vec = np.lib.format.open_memmap(
            self.store / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, DIM)
        )
        for start in range(0, n, block):
            vec[start : start + block] = read_vectors(data, start, min(n, start + block))
        vec.flush()
        del vec
        np.save(self.store / "tenants.npy", tenants)
        t3 = now()
        return {"ingest_s": (t1 - t0) + (t3 - t2), "index_s": t2 - t1, "build_s": t3 - t0}

    def open(self):
        from engram.recall.fusion import blend  # the same min-max blend as Engram's default

        self._blend = blend
        self.conn = sqlite3.connect(self.store / "fts.db", check_same_thread=False)
        self.vectors = np.load(self.store / "vectors.npy")  # exact search needs them in RAM
        tenants = np.load(self.store / "tenants.npy")
        order = np.argsort(tenants, kind="stable")
        bounds = np.searchsorted(tenants[order], np.arange(tenants.max() + 2))
        self.by_tenant = [order[bounds[t] : bounds[t + 1]] for t in range(len(bounds) - 1)]

    def close(self):
        self.conn.close()

    def _texts(self, rows: list[int]) -> list[int]:
        if rows:
            marks = ",".join("?" * len(rows))
            dict(self.conn.execute(f"SELECT rowid, text FROM docs WHERE rowid IN ({marks})", rows))
        return rows

    @staticmethod
    def _match(text: str, tenant: int | None) -> str:
        words = " OR ".join(f'"{w}"' for w in text.split() if w.replace("_", "").isalnum())
        m = f"text : ({words})"
        return m if tenant is None else f"{m} AND tenant : {tenant_name(tenant)}"

    def _kw(self, text, k, tenant=None) -> list[tuple[int, float]]:
        rows = self.conn.execute(
            "SELECT rowid, -bm25(docs, 1.0, 0.0) AS s FROM docs WHERE docs MATCH ? "
            "ORDER BY bm25(docs, 1.0, 0.0) LIMIT ?",
            (self._match(text, tenant), k),
        ).fetchall()
        return rows

    def _vec(self, vec, k, tenant=None) -> list[tuple[int, float]]:
        if tenant is None:
            scores, rows = self.vectors @ vec, None
        else:
            rows = self.by_tenant[tenant]
            scores = self.vectors[rows] @ vec
        k = min(k, len(scores))
        part = np.argpartition(-scores, k - 1)[:k]
        part = part[np.argsort(-scores[part], kind="stable")]
        ids = part if rows is None else rows[part]
        return list(zip(ids.tolist(), scores[part].tolist(), strict=True))

    def _fuse(self, kw, vec, k) -> list[int]:
        fused = self._blend(kw, vec, 0.5)
        return [cid for cid, _ in sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:k]]

    def keyword(self, text, k=K):
        return self._texts([r for r, _ in self._kw(text, k)])

    def vector(self, vec, k=K):
        return self._texts([r for r, _ in self._vec(vec, k)])

    def hybrid(self, text, vec, k=K):
        n = max(k, self.candidates)
        return self._texts(self._fuse(self._kw(text, n), self._vec(vec, n), k))

    def hybrid_filtered(self, text, vec, tenant, k=K):
        n = max(k, self.candidates)
        return self._texts(self._fuse(self._kw(text, n, tenant), self._vec(vec, n, tenant), k))

    def vector_filtered(self, vec, tenant, k=K):
        return self._texts([r for r, _ in self._vec(vec, k, tenant)])


# -- bm25s ------------------------------------------------------------------------------------
class Bm25sEngine(Engine):
    """bm25s (keyword only): Lucene BM25, k1 0.9, b 0.4, English stopwords, Snowball stemmer,
    as Engram. Returns row numbers only (bm25s keeps no text unless asked)."""

    name = "bm25s"
    libraries = ("bm25s", "Stemmer")
    ops = ("keyword",)

    def build(self, data, block=50_000):
        import bm25s
        import Stemmer

        if self.store.exists():
            shutil.rmtree(self.store)
        stem = Stemmer.Stemmer("english")
        t0 = now()
        texts = []
        for _, part in iter_texts(data, block):
            texts.extend(part)
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False)
        del texts
        t1 = now()
        model = bm25s.BM25(k1=0.9, b=0.4)
        model.index(tokens, show_progress=False)
        t2 = now()
        model.save(str(self.store), show_progress=False)
        return {
            "ingest_s": t1 - t0,
            "index_s": now() - t1,
            "build_s": now() - t0,
            "index_only_s": t2 - t1,
        }

    def open(self):
        import bm25s
        import Stemmer

        self.stem = Stemmer.Stemmer("english")
        self.model = bm25s.BM25.load(str(self.store), mmap=True, show_progress=False)
        self._tok = bm25s.tokenize

    def keyword(self, text, k=K):
        toks = self._tok(
            [text], stopwords="en", stemmer=self.stem, return_ids=False, show_progress=False
        )
        k = min(k, self.model.scores["num_docs"])
        docs, _ = self.model.retrieve(toks, k=k, show_progress=False, n_threads=1)
        return [int(d) for d in docs[0]]


# -- Engram on PostgreSQL + pgvector -----------------------------------------------------------
def pg_base_url() -> str:
    """The server to benchmark on: ``ENGRAM_BENCH_PG_URL``, else ``ENGRAM_TEST_PG_URL``
    (``eval "$(bash scripts/pg)"`` starts a local one)."""
    url = os.environ.get("ENGRAM_BENCH_PG_URL") or os.environ.get("ENGRAM_TEST_PG_URL")
    if not url:
        raise RuntimeError('set ENGRAM_BENCH_PG_URL (or run: eval "$(bash scripts/pg)")')
    return url


class PostgresEngine(EngramEngine):
    """The same Engram API with ``--store postgresql://``: ranking inside the database
    (``ts_rank`` over a GIN-indexed tsvector, pgvector HNSW with the config's M 32 /
    ef_construction 200, filters in the same ``WHERE``). Each store is a schema named after
    its folder; the HNSW index is created after the bulk load, as one would load a table."""

    name = "postgres"
    libraries = ("engram.memory", "engram.embed.precomputed", "psycopg")

    def _schema(self) -> str:
        """``ENGRAM_BENCH_PG_SCHEMA``, else ``bench_<scale folder>`` (dropped by each build)."""
        folder = "".join(c if c.isalnum() else "_" for c in self.store.parent.name)
        return os.environ.get("ENGRAM_BENCH_PG_SCHEMA") or "bench_" + folder

    def _url(self) -> str:
        from urllib.parse import quote

        url = pg_base_url()
        option = quote(f"-csearch_path={self._schema()},public", safe="")
        return f"{url}{'&' if '?' in url else '?'}options={option}"

    def _memory(self):
        from engram.embed.precomputed import PrecomputedEmbedder
        from engram.memory import Memory

        return Memory(
            self._url(), embedder=PrecomputedEmbedder(DIM, "synthetic-384"), **self.options
        )

    def build(self, data, block=50_000):
        import psycopg
        from psycopg import sql

        with psycopg.connect(pg_base_url(), autocommit=True) as conn:
            name = sql.Identifier(self._schema())
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(name))
        return super().build(data, block)

    def _before_load(self, mem) -> None:
        super()._before_load(mem)  # the tenant's expression index, as for the embedded store
        mem.retrieval.set_dim(DIM)  # creates the vector column and its HNSW index ...
        with mem.store.transaction() as conn:  # ... which is built once, after the load
            conn.execute("DROP INDEX IF EXISTS vectors_hnsw")

    def _after_load(self, mem) -> dict[str, Any]:
        mem.reindex()  # recreates the HNSW index over every row, REINDEXes the others
        with mem.store.transaction() as conn:
            conn.execute("ANALYZE")
            size = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (self._schema(),),
            ).fetchone()[0]
        return {"db_bytes": int(size)}


# -- Engram with retrieval in Milvus Lite -------------------------------------------------------
class MilvusLiteEngine(EngramEngine):
    """The same Engram API with ``--retrieval milvus-lite:PATH``: the rows in SQLite (the truth),
    BM25 (Milvus's BM25 function) and HNSW vector search in an embedded Milvus Lite collection
    fed from the store's changelog; filters compiled into both searches. The tenant key gets an
    SQL index, which a filter of few matches uses to hand Milvus a primary-key list."""

    name = "milvus-lite"
    libraries = ("engram.memory", "engram.embed.precomputed", "pymilvus", "milvus_lite")

    def _memory(self):
        from engram.embed.precomputed import PrecomputedEmbedder
        from engram.memory import Memory

        return Memory(
            self.store / "engram.db",
            embedder=PrecomputedEmbedder(DIM, "synthetic-384"),
            retrieval=f"milvus-lite:{self.store / 'milvus'}",
            **self.options,
        )

    def _after_load(self, mem) -> dict[str, Any]:
        return {}


ENGINES = {
    e.name: e
    for e in (EngramEngine, PostgresEngine, LanceEngine, Fts5Engine, Bm25sEngine, MilvusLiteEngine)
}


def make(name: str, store: str | Path, options: dict | None = None) -> Engine:
    return ENGINES[name](store, **(options or {}))


def parse_options(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}
