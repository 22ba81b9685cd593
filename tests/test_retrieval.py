"""The retrieval seam: backends chosen by URL, a typed scope, a third backend plugged in by one
factory entry; and the PostgreSQL backend's speed paths (metadata expression indexes, keyword
candidates bounded by tiers) returning what full ranking returns."""

from __future__ import annotations

import numpy as np
import pytest

from corpus import corpus
from engram.errors import EngramError
from engram.memory import Memory
from engram.retrieval import BACKENDS, Retrieval, Scope, open_retrieval, scheme_of
from engram.retrieval.local import LocalRetrieval
from engram.store import open_store
from engram.store.filters import compile_where


def test_scheme_names_the_backend():
    assert scheme_of("milvus://host:19530/kb") == "milvus"
    assert scheme_of("milvus-lite:kb.milvus") == "milvus-lite"
    assert scheme_of("local") == "local"
    assert scheme_of("local:/tmp/x") == "local"


def test_unknown_backend_is_refused_in_one_line(tmp_path):
    store = open_store(tmp_path / "s.db")
    try:
        with pytest.raises(EngramError, match="unknown retrieval 'nosuch://x'; use one of"):
            open_retrieval(store, _config(), "nosuch://x")
    finally:
        store.close()


def _config():
    from engram.config import Config

    return Config()


def test_default_is_local_index_files_beside_sqlite(mem):
    assert isinstance(mem.retrieval, LocalRetrieval)
    assert isinstance(mem.retrieval, Retrieval)
    assert mem.keyword is mem.retrieval.keyword_index


def test_scope_is_typed(mem):
    everything = mem.retrieval.scope(None, None)
    assert everything == Scope() and everything.everything
    nowhere = mem.retrieval.scope(["default"], {"topic": "no such topic"})
    assert nowhere.empty and not nowhere.everything
    some = mem.retrieval.scope(["default"], {"topic": "sailing"})
    assert some.where == {"topic": "sailing"} and not some.everything  # sole namespace: dropped
    assert len(some.resolved) and not some.empty


def test_local_index_folder_from_the_url(tmp_path, embedder):
    folder = tmp_path / "elsewhere"
    with Memory(tmp_path / "kb.db", embedder=embedder, retrieval=f"local:{folder}") as mem:
        mem.add(corpus(6))
        assert mem.search("uniq3", mode="keyword")[0].doc_id == "doc-3"
    assert (folder / "keyword").is_dir() and not (tmp_path / "kb.db.index").exists()


class CountingRetrieval(LocalRetrieval):
    """A third backend for the factory test: the local one, counting the searches it ran."""

    name = "counting"

    def __init__(self, store, config, url):
        super().__init__(store, config)
        self.url, self.searches = url, 0

    def keyword(self, query, n, scope):
        self.searches += 1
        return super().keyword(query, n, scope)

    def document_keyword(self, query, n, scope, title_weight=0.0):
        self.searches += 1
        return super().document_keyword(query, n, scope, title_weight)


def test_a_third_backend_is_one_factory_entry(tmp_path, embedder, monkeypatch):
    monkeypatch.setitem(BACKENDS, "counting", CountingRetrieval)
    with Memory(tmp_path / "kb.db", embedder=embedder, retrieval="counting://here") as mem:
        mem.add(corpus(6))
        assert mem.search("uniq2", mode="keyword")[0].doc_id == "doc-2"
        assert mem.retrieval.url == "counting://here" and mem.retrieval.searches == 1


def test_postgres_backend_needs_a_postgres_store(tmp_path, embedder):
    with pytest.raises(EngramError, match="searches inside a PostgreSQL store"):
        Memory(tmp_path / "kb.db", embedder=embedder, retrieval="postgres")
    assert not (tmp_path / "kb.db.index").exists()


# -- PostgreSQL speed paths ---------------------------------------------------------------------
def _pg_rows(n: int):
    from engram.store.base import ChunkRecord
    from engram.types import Chunk, Document

    rng = np.random.default_rng(7)
    common = ["data", "system", "model"]
    rows = []
    for i in range(n):
        words = [common[i % 3], f"rare{i % 50}", f"tok{i}"]
        if i % 7 == 0:
            words.append(common[(i + 1) % 3])
        text = " ".join(words)
        vec = rng.standard_normal(8).astype(np.float32)
        meta = {"tenant": f"t{i % 20:02d}", "n": i}
        chunk = ChunkRecord(Chunk(text, 0, 0, len(text)), f"h{i}", vec / np.linalg.norm(vec))
        rows.append((Document(text, metadata=meta), f"k{i}", f"d{i}", [chunk]))
    return rows


@pytest.fixture(scope="module")
def pg_store(tmp_path_factory):
    from pg import pg_url, store_location

    pg_url()
    with store_location("postgres", tmp_path_factory.mktemp("pg"), "speed") as url:
        store = open_store(url)
        store.write_documents("default", _pg_rows(3000), "m")
        yield store
        store.close()


def test_pg_metadata_index_serves_equality_filters(pg_store):
    where = {"tenant": "t07"}
    before = pg_store.count_documents("default", where=where)
    assert pg_store.index_metadata("tenant") == "meta_tenant"
    assert pg_store.metadata_indexes() == ["meta_tenant"]
    cond, params = compile_where(where, dialect="postgres")
    with pg_store.transaction() as conn:
        conn.execute("SET LOCAL enable_seqscan = off")  # a small table: force the choice
        plan = "\n".join(
            r[0] for r in conn.execute("EXPLAIN SELECT 1 FROM documents d WHERE " + cond, params)
        )
    assert "meta_tenant" in plan
    assert pg_store.count_documents("default", where=where) == before == 150
    # the same rows as the exact expression for the other operators on that key
    assert pg_store.count_documents("default", where={"tenant": {"$in": ["t01", "t02"]}}) == 300
    assert pg_store.count_documents("default", where={"tenant": {"$ne": "t01"}}) == 2850


def _full_ranking(store, query: str, n: int) -> list[tuple[int, float]]:
    """Every match ranked (what the keyword search did before its candidate tiers)."""
    from engram.retrieval.postgres import query_terms

    rows = store.query(
        "SELECT c.id, ts_rank(c.tsv, q, 1) AS s FROM chunks c "
        "CROSS JOIN to_tsquery('english', %s) AS q WHERE c.tsv @@ q ORDER BY s DESC, c.id LIMIT %s",
        (" | ".join(query_terms(query)), n),
    )
    return [(int(i), float(s)) for i, s in rows]


def test_pg_keyword_tiers_keep_the_best_matches(pg_store):
    from engram.retrieval.postgres import PostgresRetrieval

    retrieval = PostgresRetrieval(pg_store, _config())
    with pg_store.transaction() as conn:
        conn.execute("ANALYZE chunks")  # the statistics that say which terms are common
    queries = ["rare3 tok3", "data rare5", "system model rare7 tok700", "data", "model tok9"]
    for q in queries:
        got = retrieval.keyword(q, 10, retrieval.scope(None, None))
        want = _full_ranking(pg_store, q, 10)
        assert len(got) == len(want) == 10
        # the chunk holding every term, when there is one, comes first in both
        assert got[0][0] == want[0][0], q
        assert len({i for i, _ in got} & {i for i, _ in want}) >= 7, q
    scoped = retrieval.scope(["default"], {"tenant": "t03"})
    hits = retrieval.keyword("data rare3", 10, scoped)
    assert len(hits) == 10 and {i % 20 for i, _ in hits} == {(3 + 1) % 20}  # ids start at 1


def test_local_index_files_over_a_postgres_store(tmp_path, embedder):
    """The local backend reads any store through the Store protocol (changelog, snapshot):
    index files beside a PostgreSQL store find what the in-database search finds."""
    from pg import pg_url, store_location

    pg_url()
    with store_location("postgres", tmp_path, "localpg") as url:
        folder = tmp_path / "idx"
        with Memory(url, embedder=embedder, retrieval=f"local:{folder}") as mem:
            mem.add(corpus(12))
            assert isinstance(mem.retrieval, LocalRetrieval)
            assert mem.stats()["indexes"]["keyword"]["rows"] == 12
            local = [h.doc_id for h in mem.search("uniq7", k=3, mode="keyword")]
        with Memory(url, embedder=embedder) as mem:
            assert [h.doc_id for h in mem.search("uniq7", k=3, mode="keyword")][:1] == local[:1]
        # plain "local" (the default of --retrieval / ENGRAM_RETRIEVAL) is the store's own
        # search: inside the database for PostgreSQL; index files need a folder (local:DIR)
        with Memory(url, embedder=embedder, retrieval="local") as mem:
            assert mem.retrieval.name == "postgres"
