"""The embedded (SQLite) store beyond the backend contract: open readers, index files deleted or
damaged, vector shapes, the plain SQLite file, metadata indexes. Filters, deletes, updates, dedup
and namespaces are tested on both backends in ``test_contract.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from corpus import corpus
from engram.errors import EmbeddingMismatchError, FilterError
from engram.memory import Memory


def test_delete_seen_by_an_open_reader(make_memory, embedder):
    writer = make_memory("shared.db")
    writer.add(corpus(12))
    reader = Memory(writer.path, embedder=embedder)
    assert reader.search("uniq3", mode="keyword")[0].doc_id == "doc-3"
    writer.delete("doc-3")
    assert "doc-3" not in {h.doc_id for h in reader.search("uniq3", k=20)}
    reader.close()


def test_index_files_deleted_are_rebuilt_identically(mem):
    queries = ["telescope galaxy", "vaccine trial adults", "uniq12 roses"]
    before = [[(h.id, round(h.score, 6)) for h in mem.search(q, k=10)] for q in queries]
    mem.delete("doc-3")
    before = [[(h.id, round(h.score, 6)) for h in mem.search(q, k=10)] for q in queries]
    mem.close()
    shutil.rmtree(mem.path + ".index")
    again = Memory(mem.path, embedder=mem.embedder)
    after = [[(h.id, round(h.score, 6)) for h in again.search(q, k=10)] for q in queries]
    assert after == before
    again.close()


def test_damaged_index_is_rebuilt(mem):
    expected = [h.id for h in mem.search("galaxy redshift", k=5)]
    mem.close()
    for f in Path(mem.path + ".index").rglob("*.np*"):
        f.write_bytes(b"garbage")
    again = Memory(mem.path, embedder=mem.embedder)
    assert [h.id for h in again.search("galaxy redshift", k=5)] == expected
    again.close()


class EightDimFakeEmbedder:
    """A fake with the wrong dimension, for the mismatch test only."""

    model_id = "fake-8d"
    dim = 8
    max_tokens = 128

    def count_tokens(self, text):
        return len(text.split())

    def embed(self, texts):
        return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)


def test_wrong_vector_shape_from_embedder_is_refused(tmp_path):
    class WrongShapeFakeEmbedder(EightDimFakeEmbedder):
        """Claims 8 dims, returns 4: a broken remote endpoint, say."""

        def embed(self, texts):
            return np.ones((len(texts), 4), dtype=np.float32)

    m = Memory(tmp_path / "wrong.db", embedder=WrongShapeFakeEmbedder())
    with pytest.raises(EmbeddingMismatchError, match="shape"):
        m.add("text")
    assert m.stats()["chunks"] == 0
    m.close()


def test_store_is_a_plain_sqlite_file(mem):
    import sqlite3

    conn = sqlite3.connect(mem.path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 60
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1


def test_metadata_index_is_used_and_changes_no_result(mem):
    where = {"$and": [{"topic": "sailing"}, {"year": {"$gte": 2003}}]}
    before = {m: [h.id for h in mem.search("summary report", k=10, mode=m, where=where)] for m in
              ("keyword", "vector", "hybrid")}  # fmt: skip
    assert mem.index_metadata("topic", "year") == ["meta_topic", "meta_year"]
    assert mem.index_metadata("topic") == ["meta_topic"]  # idempotent
    assert mem.store.metadata_indexes() == ["meta_topic", "meta_year"]
    plan = " ".join(
        str(r)
        for r in mem.store.conn.execute(
            "EXPLAIN QUERY PLAN SELECT c.id FROM documents d JOIN chunks c "
            "ON c.document_id=d.id WHERE json_extract(d.metadata, '$.\"topic\"') = 'sailing'"
        )
    )
    assert "meta_topic" in plan
    after = {m: [h.id for h in mem.search("summary report", k=10, mode=m, where=where)] for m in
             ("keyword", "vector", "hybrid")}  # fmt: skip
    assert after == before and all(after.values())
    with pytest.raises(FilterError, match="invalid metadata key"):
        mem.index_metadata("topic'); DROP TABLE documents; --")
    assert mem.store.count_documents("default") == 60


def _hash_lookups(store, hashes, model):
    """``vectors_for_hashes``'s result and the query plan of each statement it ran."""
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        found = store.vectors_for_hashes(hashes, model)
    finally:
        store.conn.set_trace_callback(None)
    plans = [
        " ".join(str(r) for r in store.conn.execute("EXPLAIN QUERY PLAN " + s))
        for s in statements
        if s.lstrip().startswith("SELECT")
    ]
    return found, plans


def test_vectors_are_found_by_content_hash_through_its_prefix_index(mem):
    store, model = mem.store, mem.embedder.model_id
    row = store.conn.execute(
        "SELECT c.content_hash, v.vector FROM chunks c JOIN vectors v ON v.chunk_id = c.id LIMIT 1"
    ).fetchone()
    known, vector = row[0], np.frombuffer(row[1], dtype=np.float32)
    twin = known[:12] + ("0" if known[12] != "0" else "1") + known[13:]  # same prefix
    found, plans = _hash_lookups(store, [known, twin, "f" * 64], model)
    assert list(found) == [known] and np.array_equal(found[known], vector)
    assert plans and all("chunks_hash_prefix" in p for p in plans)
    assert _hash_lookups(store, [known], "another-model")[0] == {}
    names = {r[1] for r in store.conn.execute("PRAGMA index_list(chunks)")}
    assert "chunks_hash_prefix" in names and "chunks_hash" not in names


def test_a_store_of_schema_2_gets_the_hash_prefix_index(make_memory, embedder):
    import sqlite3

    m = make_memory("old.db")
    m.add(corpus(5))
    path = m.path
    m.close()
    conn = sqlite3.connect(path)  # back to schema 2: the full-hash index
    conn.executescript(
        "DROP INDEX chunks_hash_prefix; CREATE INDEX chunks_hash ON chunks(content_hash); "
        "PRAGMA user_version = 2;"
    )
    conn.close()
    again = Memory(path, embedder=embedder)
    names = {r[1] for r in again.store.conn.execute("PRAGMA index_list(chunks)")}
    assert again.store.schema_version() >= 3
    assert "chunks_hash_prefix" in names and "chunks_hash" not in names
    again.add(corpus(5))  # unchanged documents: nothing embedded or written again
    assert again.store.count_documents("default") == 5
    again.close()


def test_new_stores_get_16_kib_pages_and_old_ones_keep_theirs(tmp_path, embedder):
    import sqlite3

    from engram.store.sqlite import PAGE_SIZE

    new = Memory(tmp_path / "new.db", embedder=embedder)
    new.add(corpus(3))
    assert new.store.conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16384
    new.close()
    conn = sqlite3.connect(tmp_path / "old.db")  # a store made with SQLite's 4 KiB pages
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    old = Memory(tmp_path / "old.db", embedder=embedder)
    old.add(corpus(3))
    assert old.store.conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert old.search("uniq1", mode="keyword")[0].doc_id == "doc-1"
    old.close()
