"""The core store: filters inside retrieval, deletes, updates, dedup, namespaces, rebuilds."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from corpus import corpus
from engram.errors import EmbeddingMismatchError, FilterError, NamespaceError
from engram.memory import Memory
from engram.types import Document


@pytest.mark.parametrize("mode", ["keyword", "vector", "hybrid"])
def test_filter_returns_k_when_k_exist(mem, mode):
    # 10 of 60 documents are medicine notes; the query is about sailing, so an engine that
    # filtered after cutting to the top k would return fewer than k.
    hits = mem.search(
        "sailing wind mainsail summary report", k=8, mode=mode, where={"topic": "medicine"}
    )
    assert len(hits) == 8
    assert all(h.metadata["topic"] == "medicine" for h in hits)


@pytest.mark.parametrize(
    "where,expected",
    [
        ({"year": {"$gte": 2008}}, lambda d: d.metadata["year"] >= 2008),
        ({"rank": {"$in": [3, 4, 5]}}, lambda d: d.metadata["rank"] in (3, 4, 5)),
        ({"tags": {"$contains": "even"}}, lambda d: "even" in d.metadata["tags"]),
        ({"source": {"$contains": "cooking"}}, lambda d: "cooking" in d.source),
        (
            "year>=2005 and topic=finance|cooking",
            lambda d: d.metadata["year"] >= 2005 and d.metadata["topic"] in ("finance", "cooking"),
        ),
        ({"$or": [{"rank": 1}, {"rank": 2}]}, lambda d: d.metadata["rank"] in (1, 2)),
        ({"$not": {"topic": "sailing"}}, lambda d: d.metadata["topic"] != "sailing"),
    ],
)
def test_filters_match_python_semantics(mem, where, expected):
    want = {d.id for d in corpus(60) if expected(d)}
    hits = mem.search("summary report", k=60, mode="keyword", where=where)
    assert {h.doc_id for h in hits} == want


def test_time_range_filter(mem):
    assert (
        len(
            mem.search(
                "report",
                k=60,
                mode="keyword",
                where={"created_at": {"$gte": "2000-01-01T00:00:00"}},
            )
        )
        == 60
    )
    assert (
        mem.search("report", k=60, mode="keyword", where={"created_at": {"$lt": "2000-01-01"}})
        == []
    )


@pytest.mark.parametrize(
    "hostile",
    [
        {"topic": "x' OR '1'='1"},
        {"topic": "'; DROP TABLE chunks; --"},
        {"year": {"$in": ["1); DELETE FROM documents; --"]}},
        {"tags": {"$contains": "%' OR 1=1 --"}},
    ],
)
def test_hostile_filter_values_are_data(mem, hostile):
    assert mem.search("report", k=10, where=hostile) == []
    assert mem.stats()["chunks"] == 60


@pytest.mark.parametrize(
    "bad",
    [
        {'topic"); DROP TABLE chunks; --': 1},
        {"a.b'c": 1},
        {"year": {"$regex": ".*"}},
        {"year": {"$in": []}},
        {"year": {"$gt": [1, 2]}},
        "year >> 3 or",
        "{not json",
    ],
)
def test_invalid_filters_get_a_clear_error(mem, bad):
    with pytest.raises(FilterError):
        mem.search("report", where=bad)
    assert mem.stats()["chunks"] == 60


def test_delete_is_never_returned(mem):
    assert mem.search("uniq7", mode="keyword")[0].doc_id == "doc-7"
    assert mem.delete("doc-7") == 1
    for mode in ("keyword", "vector", "hybrid"):
        assert "doc-7" not in {h.doc_id for h in mem.search("uniq7 note 7", k=60, mode=mode)}
    # also from a second process-like view: a fresh Memory on the same file
    other = Memory(mem.path, embedder=mem.embedder)
    assert "doc-7" not in {h.doc_id for h in other.search("uniq7", k=60)}
    other.close()


def test_delete_seen_by_an_open_reader(make_memory, embedder):
    writer = make_memory("shared.db")
    writer.add(corpus(12))
    reader = Memory(writer.path, embedder=embedder)
    assert reader.search("uniq3", mode="keyword")[0].doc_id == "doc-3"
    writer.delete("doc-3")
    assert "doc-3" not in {h.doc_id for h in reader.search("uniq3", k=20)}
    reader.close()


def test_delete_by_filter_and_audit(mem):
    n = mem.delete(where={"topic": "sailing"}, reason="cleanup")
    assert n == 10
    assert all(h.metadata["topic"] != "sailing" for h in mem.search("mainsail", k=60))
    audit = mem.store.audit()
    assert len(audit) == 10 and all(a["reason"] == "cleanup" for a in audit)


def test_update_replaces_old_text(mem):
    report = mem.add(Document(id="doc-5", text="Completely new words: zebra quartz lantern."))
    assert report.updated == 1
    assert mem.search("zebra quartz", mode="keyword")[0].doc_id == "doc-5"
    assert all(h.doc_id != "doc-5" for h in mem.search("uniq5", k=60, mode="keyword"))
    assert mem.stats()["documents"] == 60


def test_re_add_is_a_no_op(mem):
    before = mem.stats()
    report = mem.add(corpus(60))
    assert report.unchanged == 60 and report.added == 0 and report.embedded == 0
    after = mem.stats()
    assert after["chunks"] == before["chunks"] and after["changes"] == before["changes"]


def test_identical_chunks_are_embedded_once(make_memory):
    m = make_memory()
    r = m.add(
        [
            Document(id="x", text="Shared paragraph about owls."),
            Document(id="y", text="Shared paragraph about owls."),
        ]
    )
    assert r.added == 2 and r.embedded == 1


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


def test_reindex_keeps_results(mem):
    expected = [h.id for h in mem.search("pruning roses", k=5)]
    mem.reindex()
    assert [h.id for h in mem.search("pruning roses", k=5)] == expected


class EightDimFakeEmbedder:
    """A fake with the wrong dimension, for the mismatch test only."""

    model_id = "fake-8d"
    dim = 8
    max_tokens = 128

    def count_tokens(self, text):
        return len(text.split())

    def embed(self, texts):
        return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)


def test_mismatched_embedding_model_is_refused(mem):
    other = Memory(mem.path, embedder=EightDimFakeEmbedder())
    with pytest.raises(EmbeddingMismatchError, match="384"):
        other.add("a new note")
    with pytest.raises(EmbeddingMismatchError):
        other.search("galaxy", mode="vector")
    assert other.search("galaxy", mode="keyword")  # keyword search still works
    other.close()
    assert mem.stats()["chunks"] == 60


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


def test_namespaces_isolate(make_memory):
    m = make_memory()
    m.add("Alice likes green tea.", namespace="alice")
    m.add("Bob likes black coffee.", namespace="bob")
    for mode in ("keyword", "vector", "hybrid"):
        hits = m.search("likes tea coffee", namespace="alice", mode=mode, k=5)
        assert {h.namespace for h in hits} == {"alice"}
    both = m.search("likes", namespace=["alice", "bob"], mode="keyword", k=5)
    assert {h.namespace for h in both} == {"alice", "bob"}
    with pytest.raises(NamespaceError, match="unknown namespace"):
        m.search("tea", namespace="carol")
    with pytest.raises(NamespaceError, match="invalid namespace"):
        m.add("x", namespace="../etc")


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
