"""One contract for every setup: SQLite + local index files, PostgreSQL + pgvector, and
SQLite + Milvus (retrieval in a Milvus collection, here Milvus Lite's gRPC server).

Every test here runs against the three setups with the same inputs and expects the same
results. The PostgreSQL runs need ``ENGRAM_TEST_PG_URL`` (``eval "$(bash scripts/pg)"``), the
Milvus runs ``ENGRAM_TEST_MILVUS_URL`` (``eval "$(bash scripts/milvus)"``); without them they skip
locally and fail under CI. Each PostgreSQL store lives in a fresh schema, each Milvus one in a
fresh collection.

Keyword scores differ by design (BM25 in the embedded index and Milvus, ``ts_rank`` in
PostgreSQL), so keyword results are compared as sets and top hits, not as scores.
"""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
from milvus import milvus_url
from pg import BACKENDS, CachingEmbedder, pg_url, retrieval_options, store_location

from corpus import corpus
from engram.errors import EmbeddingMismatchError, FilterError, NamespaceError, QueryError
from engram.memory import Memory
from engram.types import Document

MODES = ("keyword", "vector", "hybrid")
DOCS = corpus(60)
SETUPS = (*BACKENDS, "milvus")


def need_server(backend: str) -> None:
    """Skip (fail under CI) a setup whose server is not there."""
    if backend == "postgres":
        pg_url()
    elif backend == "milvus":
        milvus_url()


@pytest.fixture(scope="session")
def cached_embedder(embedder):
    return CachingEmbedder(embedder)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, cached_embedder):
    """``corpora(backend)``: a Memory holding ``corpus(60)``, built once per module. Read-only."""
    stack = ExitStack()
    built: dict[str, Memory] = {}

    def get(backend: str) -> Memory:
        if backend not in built:
            need_server(backend)
            folder = tmp_path_factory.mktemp("contract")
            location = stack.enter_context(store_location(backend, folder, "corpus"))
            mem = Memory(location, embedder=cached_embedder, **retrieval_options(location))
            mem.add(DOCS)
            built[backend] = mem
        return built[backend]

    yield get
    for mem in built.values():
        mem.close()
    stack.close()


@pytest.fixture(scope="module", params=SETUPS)
def backend(request):
    return request.param


@pytest.fixture
def ro(corpora, backend):
    """The shared corpus store of this backend (tests must not change it)."""
    return corpora(backend)


@pytest.fixture
def open_memory(backend, tmp_path, cached_embedder):
    """``open_memory(label, location=None, **options)``: a Memory on a fresh store."""
    need_server(backend)
    stack = ExitStack()
    opened: list[Memory] = []

    def make(label: str = "m", location: str | None = None, embedder=None, **options) -> Memory:
        if location is None:
            location = stack.enter_context(store_location(backend, tmp_path, label))
        options = {**retrieval_options(location), **options}
        mem = Memory(location, embedder=embedder or cached_embedder, **options)
        opened.append(mem)
        return mem

    yield make
    for mem in opened:
        mem.close()
    stack.close()


@pytest.fixture
def mem(open_memory):
    """A fresh store of this backend holding ``corpus(60)`` (tests may change it)."""
    m = open_memory("corpus")
    m.add(DOCS)
    return m


def doc_ids(hits) -> list[str]:
    return [h.doc_id for h in hits]


# -- writes -----------------------------------------------------------------------------------
def test_add_reports_and_stats(open_memory):
    m = open_memory()
    report = m.add(DOCS)
    assert (report.added, report.updated, report.unchanged, report.chunks) == (60, 0, 0, 60)
    stats = m.stats()
    assert {
        "path",
        "schema_version",
        "namespaces",
        "documents",
        "chunks",
        "changes",
        "embedding_model",
        "embedding_dim",
        "size_bytes",
        "indexes",
    } <= set(stats)
    assert (stats["namespaces"], stats["documents"], stats["chunks"], stats["changes"]) == (
        1,
        60,
        60,
        60,
    )
    assert stats["schema_version"] >= 1 and stats["size_bytes"] > 0
    assert stats["embedding_model"] == m.embedder.model_id and stats["embedding_dim"] == 384
    documents = {"document"} if m.retrieval.name == "local" else set()  # whole-document BM25
    assert set(stats["indexes"]) == {"keyword", "vector"} | documents
    assert stats["indexes"]["keyword"]["rows"] == 60 == stats["indexes"]["vector"]["rows"]
    json.dumps(stats)  # the CLI prints it
    [ns] = m.namespaces()
    assert (ns["name"], ns["documents"], ns["chunks"]) == ("default", 60, 60)


def test_re_add_is_a_no_op(mem):
    before = mem.stats()
    report = mem.add(DOCS)
    assert report.unchanged == 60 and report.added == 0 and report.embedded == 0
    after = mem.stats()
    assert after["chunks"] == before["chunks"] and after["changes"] == before["changes"]


def test_update_replaces_old_text(mem):
    report = mem.add(Document(id="doc-5", text="Completely new words: zebra quartz lantern."))
    assert report.updated == 1
    assert doc_ids(mem.search("zebra quartz", mode="keyword"))[0] == "doc-5"
    assert "doc-5" not in doc_ids(mem.search("uniq5", k=60, mode="keyword"))
    assert mem.stats()["documents"] == 60 and mem.stats()["chunks"] == 60


def test_write_results_and_changelog(mem):
    store = mem.store
    head = store.max_seq()
    old = {h.id for h in mem.search("uniq9", k=60, mode="keyword") if h.doc_id == "doc-9"}
    report = mem.add(Document(id="doc-9", text="A rewritten note about kites."))
    assert report.updated == 1
    changes = store.changes_since(head)
    assert [c[1] for c in changes] == ["delete"] * len(old) + ["add"]
    assert {c[2] for c in changes if c[1] == "delete"} == old
    assert store.existing([c[2] for c in changes]) == {changes[-1][2]}
    assert store.chunk_texts([changes[-1][2]]) == {changes[-1][2]: "A rewritten note about kites."}


def test_identical_chunks_are_embedded_once(open_memory):
    m = open_memory()
    r = m.add(
        [
            Document(id="x", text="Shared paragraph about owls."),
            Document(id="y", text="Shared paragraph about owls."),
        ]
    )
    assert r.added == 2 and r.embedded == 1


def test_mismatched_embedding_model_is_refused(mem, open_memory):
    from test_store import EightDimFakeEmbedder

    other = open_memory(location=mem.path, embedder=EightDimFakeEmbedder())
    with pytest.raises(EmbeddingMismatchError, match="384"):
        other.add("a new note")
    with pytest.raises(EmbeddingMismatchError):
        other.search("galaxy", mode="vector")
    assert other.search("galaxy", mode="keyword")
    assert mem.stats()["chunks"] == 60


# -- search -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_unique_term_is_found_first(ro, mode):
    for i in (3, 17, 42):
        assert doc_ids(ro.search(f"uniq{i} reference code", k=5, mode=mode))[0] == f"doc-{i}"


@pytest.mark.parametrize(
    "query,topic",
    [
        ("telescope galaxy redshift", "astronomy"),
        ("simmer tomato sauce with garlic", "cooking"),
        ("prune roses in spring", "gardening"),
        ("reef the mainsail in strong wind", "sailing"),
        ("quarterly revenue growth", "finance"),
        ("vaccine trial volunteers", "medicine"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_topic_queries_find_their_topic(ro, mode, query, topic):
    hits = ro.search(query, k=10, mode=mode)
    assert len(hits) == 10
    assert all(h.metadata["topic"] == topic for h in hits)


def test_hits_carry_rows_and_scores(ro):
    hits = ro.search("uniq9 sailing", k=3, with_vectors=True)
    top = hits[0]
    doc = DOCS[9]
    assert (top.doc_id, top.source, top.title, top.namespace) == (
        "doc-9",
        doc.source,
        doc.title,
        "default",
    )
    assert top.metadata == doc.metadata
    assert top.created_at > 0 and top.text.startswith("Note 9 on sailing")
    assert {"fused", "keyword", "keyword_rank", "vector", "vector_rank"} <= set(top.scores)
    assert top.vector is not None and top.vector.shape == (384,)
    assert abs(float(top.vector @ top.vector) - 1.0) < 1e-3
    assert ro.get([top.id])[0].text == top.text


def test_vector_scores_are_cosines(ro):
    q = ro.embed_query("telescope galaxy")
    hits = ro.search("telescope galaxy", k=5, mode="vector", with_vectors=True)
    for h in hits:
        assert abs(h.scores["vector"] - float(h.vector @ q)) < 1e-4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_empty_query_terms(ro):
    assert ro.search("the and of", k=5, mode="keyword") == []
    for mode in MODES:  # nothing to search for: an error, not arbitrary hits
        with pytest.raises(QueryError, match="at least one letter or digit"):
            ro.search("!!! ??? ***", k=5, mode=mode)


def test_reindex_keeps_results(mem):
    expected = [h.id for h in mem.search("pruning roses", k=5)]
    counts = mem.reindex()
    documents = {"document": 60} if mem.retrieval.name == "local" else {}  # chunks read
    assert counts == {"keyword": 60, "vector": 60, **documents}
    assert [h.id for h in mem.search("pruning roses", k=5)] == expected


def test_a_second_memory_sees_writes(mem, open_memory):
    reader = open_memory(location=mem.path)
    assert doc_ids(reader.search("uniq3", mode="keyword"))[0] == "doc-3"
    mem.add(Document(id="late", text="A late note about a heron named Quillon."))
    assert doc_ids(reader.search("Quillon heron", k=1, mode="keyword")) == ["late"]
    assert doc_ids(reader.search("Quillon heron", k=1, mode="vector")) == ["late"]
    mem.delete("doc-3")
    for mode in MODES:
        assert "doc-3" not in doc_ids(reader.search("uniq3", k=60, mode=mode))


# -- filters ----------------------------------------------------------------------------------
FILTER_CASES = [
    ({"topic": "cooking"}, lambda d: d.metadata["topic"] == "cooking"),
    ({"topic": {"$eq": "cooking"}}, lambda d: d.metadata["topic"] == "cooking"),
    ({"topic": {"$ne": "cooking"}}, lambda d: d.metadata["topic"] != "cooking"),
    ({"year": {"$gt": 2007}}, lambda d: d.metadata["year"] > 2007),
    ({"year": {"$gte": 2008}}, lambda d: d.metadata["year"] >= 2008),
    ({"year": {"$lt": 2002}}, lambda d: d.metadata["year"] < 2002),
    ({"year": {"$lte": 2002}}, lambda d: d.metadata["year"] <= 2002),
    ({"year": {"$gte": 2003, "$lt": 2005}}, lambda d: 2003 <= d.metadata["year"] < 2005),
    ({"year": {"$gt": 2004.5}}, lambda d: d.metadata["year"] > 2004.5),
    ({"rank": {"$in": [3, 4, 5]}}, lambda d: d.metadata["rank"] in (3, 4, 5)),
    (
        {"topic": {"$nin": ["cooking", "finance"]}},
        lambda d: d.metadata["topic"] not in ("cooking", "finance"),
    ),
    ({"tags": {"$contains": "even"}}, lambda d: "even" in d.metadata["tags"]),
    ({"topic": {"$contains": "ook"}}, lambda d: "ook" in d.metadata["topic"]),
    ({"rank": {"$contains": 1}}, lambda d: "1" in str(d.metadata["rank"])),
    ({"source": {"$contains": "cooking"}}, lambda d: "cooking" in d.source),
    ({"title": {"$contains": "note 1"}}, lambda d: "note 1" in d.title),
    ({"doc_id": {"$in": ["doc-1", "doc-2", "nope"]}}, lambda d: d.id in ("doc-1", "doc-2")),
    ({"doc_id": "doc-33"}, lambda d: d.id == "doc-33"),
    ({"source": {"$gte": "notes/m"}}, lambda d: d.source >= "notes/m"),
    ({"namespace": "default"}, lambda d: True),
    ({"rank": {"$exists": True}}, lambda d: True),
    ({"missing": {"$exists": True}}, lambda d: False),
    ({"missing": {"$exists": False}}, lambda d: True),
    ({"missing": None}, lambda d: True),
    ({"rank": {"$ne": None}}, lambda d: True),
    ({"missing": "x"}, lambda d: False),
    ({"missing": {"$ne": "x"}}, lambda d: False),  # a missing key is NULL, as in SQL
    ({"$or": [{"rank": 1}, {"rank": 2}]}, lambda d: d.metadata["rank"] in (1, 2)),
    (
        {"$and": [{"topic": "sailing"}, {"year": {"$lt": 2005}}]},
        lambda d: d.metadata["topic"] == "sailing" and d.metadata["year"] < 2005,
    ),
    ({"$not": {"topic": "sailing"}}, lambda d: d.metadata["topic"] != "sailing"),
    (
        {"$not": {"$or": [{"year": {"$lt": 2003}}, {"tags": {"$contains": "odd"}}]}},
        lambda d: not (d.metadata["year"] < 2003 or "odd" in d.metadata["tags"]),
    ),
    (
        "year>=2005 and topic=finance|cooking",
        lambda d: d.metadata["year"] >= 2005 and d.metadata["topic"] in ("finance", "cooking"),
    ),
    ("title~note 4", lambda d: "note 4" in d.title),
    ({"created_at": {"$gte": "2000-01-01T00:00:00"}}, lambda d: True),
    ({"created_at": {"$lt": "2000-01-01"}}, lambda d: False),
    ({"updated_at": {"$gt": "2000-01-01T00:00:00Z"}}, lambda d: True),
    ({"created_at": {"$lt": 946684800}}, lambda d: False),
]


@pytest.mark.parametrize("where,expected", FILTER_CASES, ids=[str(c[0]) for c in FILTER_CASES])
def test_filters_match_python_semantics(ro, where, expected):
    want = {d.id for d in DOCS if expected(d)}
    assert {h.doc_id for h in ro.search("summary report", k=60, mode="keyword", where=where)} == (
        want
    )
    assert {h.doc_id for h in ro.search("summary report", k=60, mode="vector", where=where)} == (
        want
    )


@pytest.mark.parametrize("mode", MODES)
def test_filter_returns_k_when_k_exist(ro, mode):
    # 10 of 60 documents are medicine notes; the query is about sailing, so an engine that
    # filtered after cutting to the top k would return fewer than k.
    hits = ro.search(
        "sailing wind mainsail summary report", k=8, mode=mode, where={"topic": "medicine"}
    )
    assert len(hits) == 8
    assert all(h.metadata["topic"] == "medicine" for h in hits)
    hits = ro.search("summary report", k=3, mode=mode, where={"rank": {"$in": [1, 7, 59, 30]}})
    assert len(hits) == 3 and set(doc_ids(hits)) <= {"doc-1", "doc-7", "doc-59", "doc-30"}


def test_filter_with_few_matches_returns_all_of_them(ro):
    for mode in ("vector", "hybrid"):
        hits = ro.search("anything at all", k=10, mode=mode, where={"rank": {"$in": [2, 44]}})
        assert sorted(doc_ids(hits)) == ["doc-2", "doc-44"]


@pytest.mark.parametrize(
    "hostile",
    [
        {"topic": "x' OR '1'='1"},
        {"topic": "'; DROP TABLE chunks; --"},
        {"year": {"$in": ["1); DELETE FROM documents; --"]}},
        {"tags": {"$contains": "%' OR 1=1 --"}},
        {"tags": {"$contains": "\"]' OR true --"}},
        {"topic": {"$lt": "') OR ('a'='a"}},
        {"source": {"$contains": "'); DROP TABLE documents; --"}},
        {"title": "$1; SELECT pg_sleep(10)"},
    ],
)
def test_hostile_filter_values_are_data(ro, hostile):
    assert ro.search("report", k=10, where=hostile) == []
    assert ro.stats()["chunks"] == 60


@pytest.mark.parametrize(
    "bad",
    [
        {'topic"); DROP TABLE chunks; --': 1},
        {"a.b'c": 1},
        {"a b": {"$contains": "x"}},
        {"year": {"$regex": ".*"}},
        {"year": {"$in": []}},
        {"year": {"$gt": [1, 2]}},
        {"year": {"$in": [[1]]}},
        {"$or": []},
        {"$nor": [{"a": 1}]},
        {"created_at": {"$gt": "yesterday"}},
        "year >> 3 or",
        "{not json",
    ],
)
def test_invalid_filters_get_a_clear_error(ro, bad):
    with pytest.raises(FilterError):
        ro.search("report", where=bad)
    assert ro.stats()["chunks"] == 60


def test_select_documents_and_metadata_max(ro):
    store = ro.store
    docs = store.select_documents("default", {"topic": "sailing"}, newest_first=True, limit=3)
    assert len(docs) == 3 and all(d["metadata"]["topic"] == "sailing" for d in docs)
    (first,) = store.select_documents("default", {"doc_id": "doc-3"})
    assert first["chunks"] and first["chunks"][0][2].startswith("Note 3 on sailing")
    assert store.metadata_max("default", "rank") == 59
    assert store.metadata_max("default", "rank", {"topic": "sailing"}) == 57
    assert store.metadata_max("default", "topic") is None  # strings are not numbers
    assert store.metadata_max("default", "missing") is None
    assert store.metadata_max("nowhere", "rank") is None
    with pytest.raises(FilterError, match="invalid metadata key"):
        store.metadata_max("default", "rank') OR 1=1 --")


def test_hostile_query_text_is_data(ro):
    for query in ("') | ('a", "x & !y | (z:*", "'; DROP TABLE chunks; --", "a\\b <-> c", "\x01a"):
        for mode in MODES:
            ro.search(query, k=5, mode=mode)
    assert ro.stats()["chunks"] == 60


# -- deletes ----------------------------------------------------------------------------------
def test_delete_is_never_returned(mem, open_memory):
    assert doc_ids(mem.search("uniq7", mode="keyword"))[0] == "doc-7"
    assert mem.delete("doc-7") == 1
    for mode in MODES:
        assert "doc-7" not in doc_ids(mem.search("uniq7 note 7", k=60, mode=mode))
    other = open_memory(location=mem.path)
    assert "doc-7" not in doc_ids(other.search("uniq7", k=60))
    assert mem.stats()["documents"] == 59 and mem.stats()["chunks"] == 59


def test_delete_by_filter_and_audit(mem):
    n = mem.delete(where={"topic": "sailing"}, reason="cleanup")
    assert n == 10
    assert all(h.metadata["topic"] != "sailing" for h in mem.search("mainsail", k=60))
    audit = mem.store.audit()
    assert len(audit) == 10 and all(a["reason"] == "cleanup" for a in audit)
    assert {a["target"] for a in audit} == {f"doc-{i}" for i in range(3, 60, 6)}
    assert all(a["action"] == "delete" and a["namespace"] == "default" for a in audit)


def test_delete_chunks_and_unknown_ids(mem):
    hit = mem.search("uniq11", k=1, mode="keyword")[0]
    assert mem.delete(chunk_ids=[hit.id, 10**9], reason="one chunk") == 1
    assert "doc-11" not in doc_ids(mem.search("uniq11", k=60, mode="keyword"))
    assert mem.store.audit(limit=1)[0]["target"] == f"chunk:{hit.id}"
    assert mem.delete(["no-such-doc"]) == 0
    assert mem.delete(where={"topic": "nothing"}) == 0
    head = mem.store.max_seq()
    assert mem.store.changes_since(head - 1) == [(head, "delete", hit.id)]


def test_delete_namespace_and_drop(open_memory):
    m = open_memory()
    m.add(["one note", "two notes"], namespace="temp")
    m.add("kept note")
    assert m.store.delete(namespace="temp", reason="gone") == 2
    assert m.store.drop_namespace("temp") == 0
    assert [n["name"] for n in m.namespaces()] == ["default"]
    assert doc_ids(m.search("note", k=5, namespace="*", mode="keyword")) != []


# -- namespaces -------------------------------------------------------------------------------
def test_namespaces_isolate(open_memory):
    m = open_memory()
    m.add("Alice likes green tea.", namespace="alice")
    m.add("Bob likes black coffee.", namespace="bob")
    for mode in MODES:
        hits = m.search("likes tea coffee", namespace="alice", mode=mode, k=5)
        assert {h.namespace for h in hits} == {"alice"}
        hits = m.search("likes tea coffee", namespace="bob", mode=mode, k=5)
        assert {h.namespace for h in hits} == {"bob"}
    both = m.search("likes", namespace=["alice", "bob"], mode="keyword", k=5)
    assert {h.namespace for h in both} == {"alice", "bob"}
    assert {h.namespace for h in m.search("likes", namespace="*", k=5)} == {"alice", "bob"}
    assert [(n["name"], n["documents"]) for n in m.namespaces()] == [("alice", 1), ("bob", 1)]
    with pytest.raises(NamespaceError, match="unknown namespace"):
        m.search("tea", namespace="carol")
    with pytest.raises(NamespaceError, match="unknown namespace"):
        m.delete("x", namespace="carol")
    with pytest.raises(NamespaceError, match="invalid namespace"):
        m.add("x", namespace="../etc")
    assert m.delete(where={"doc_id": {"$exists": True}}, namespace="alice") == 1
    assert m.search("likes", namespace="alice", k=5) == []
    assert len(m.search("likes", namespace="bob", k=5)) == 1


def test_same_key_in_two_namespaces(open_memory):
    m = open_memory()
    m.add({"id": "k", "text": "Ravens cache food."}, namespace="a")
    m.add({"id": "k", "text": "Ravens cache food."}, namespace="b")
    assert m.stats()["documents"] == 2
    m.delete("k", namespace="a")
    assert doc_ids(m.search("ravens", namespace="b", mode="keyword")) == ["k"]
    assert m.search("ravens", namespace="a", mode="keyword") == []


def test_empty_store_searches(open_memory):
    m = open_memory()
    for mode in MODES:
        assert m.search("anything", mode=mode) == []
    assert m.stats()["documents"] == 0


# -- the setups agree with SQLite + local -----------------------------------------------------
@pytest.fixture(scope="module", params=SETUPS[1:])
def both(corpora, request):
    return corpora("sqlite"), corpora(request.param)


QUERIES = [
    "telescope galaxy",
    "vaccine trial adults",
    "uniq12 roses",
    "reef the mainsail when wind rises",
    "garlic basil sauce",
    "operating costs report",
    "note 23 summary",
]


def test_backends_agree_on_vector_search(both):
    lite, pg = both
    for query in QUERIES:
        a = lite.search(query, k=10, mode="vector")
        b = pg.search(query, k=10, mode="vector")
        assert doc_ids(a) == doc_ids(b), query
        for x, y in zip(a, b, strict=True):
            assert abs(x.score - y.score) < 1e-4


def test_backends_agree_on_keyword_and_hybrid_search(both):
    lite, pg = both
    for query in QUERIES:
        a = lite.search(query, k=60, mode="keyword")
        b = pg.search(query, k=60, mode="keyword")
        assert set(doc_ids(a)) == set(doc_ids(b)), query
        assert doc_ids(a)[0] == doc_ids(b)[0], query
        a = lite.search(query, k=3, mode="hybrid")
        b = pg.search(query, k=3, mode="hybrid")
        assert doc_ids(a)[0] == doc_ids(b)[0], query


def test_backends_agree_on_filtered_search(both):
    lite, pg = both
    for where in ({"topic": "finance"}, {"year": {"$in": [2001, 2009]}}, {"rank": {"$lt": 12}}):
        for mode in MODES:
            a = lite.search("summary report of the note", k=6, mode=mode, where=where)
            b = pg.search("summary report of the note", k=6, mode=mode, where=where)
            assert len(a) == len(b) == 6
            if mode == "vector":
                assert doc_ids(a) == doc_ids(b)


# Stored values of every JSON type, and filters whose meaning depends on SQL's rules for
# missing keys (NULL), mixed types (numbers sort before text) and booleans (1/0).
MIXED = [
    1,
    2.5,
    0,
    -3,
    "1",
    "abc",
    "B",
    "",
    True,
    False,
    None,
    [1, "x"],
    ["a", True],
    [],
    {"a": 1},
    "2024-01-01",
    10**15,
    "ÿ",
    "é",
]
MIXED_FILTERS = [
    {"v": 1},
    {"v": True},
    {"v": "1"},
    {"v": {"$ne": 1}},
    {"v": {"$ne": "abc"}},
    {"v": {"$gt": 0}},
    {"v": {"$gte": 1}},
    {"v": {"$lt": 1}},
    {"v": {"$lte": 2.5}},
    {"v": {"$gt": "B"}},
    {"v": {"$lt": "B"}},
    {"v": {"$gte": ""}},
    {"v": {"$lt": "é"}},
    {"v": {"$gt": 10**14}},
    {"v": {"$gt": None}},
    {"v": None},
    {"v": {"$ne": None}},
    {"v": {"$exists": True}},
    {"v": {"$exists": False}},
    {"v": {"$in": [1, "abc", None]}},
    {"v": {"$nin": [1, "abc"]}},
    {"v": {"$nin": [1, None]}},
    {"v": {"$contains": "a"}},
    {"v": {"$contains": 1}},
    {"v": {"$contains": True}},
    {"v": {"$contains": "x"}},
    {"v": {"$contains": "2"}},
    {"$not": {"v": {"$ne": 1}}},
    {"$not": {"v": {"$gt": 0}}},
    {"$not": {"v": {"$in": [1, None]}}},
    {"$not": {"v": {"$contains": "a"}}},
    {"$not": {"v": None}},
    {"$or": [{"v": {"$lt": 0}}, {"v": {"$gt": "a"}}]},
    {"v.a": 1},
    {"v.a": {"$exists": True}},
    {"v": {"$gte": "2000-01-01"}},
    {"v": {"$lt": "2030-01-01T00:00:00Z"}},
    {"$not": {"v": {"$gte": "B"}}},
    {"$not": {"v": {"$lt": "2030-01-01"}}},
]


@pytest.mark.parametrize("other", SETUPS[1:])
def test_backends_agree_on_mixed_type_filters(tmp_path, cached_embedder, other):
    need_server(other)
    docs = [
        Document(id=f"m{i}", text=f"Mixed value note {i}.", metadata={"v": v})
        for i, v in enumerate(MIXED)
    ] + [Document(id="m-none", text="Mixed value note without v.", metadata={"w": 1})]
    with ExitStack() as stack:
        mems = []
        for backend in ("sqlite", other):
            location = stack.enter_context(store_location(backend, tmp_path, "mixed"))
            options = retrieval_options(location)
            mems.append(stack.enter_context(Memory(location, embedder=cached_embedder, **options)))
            mems[-1].add(docs)
        lite, pg = mems
        for where in MIXED_FILTERS:
            a = {
                h.doc_id for h in lite.search("mixed value note", k=50, mode="keyword", where=where)
            }
            b = {h.doc_id for h in pg.search("mixed value note", k=50, mode="keyword", where=where)}
            assert a == b, where


# -- bulk loads, the command line -------------------------------------------------------------
def test_bulk_import_adds_updates_and_skips(open_memory):
    m = open_memory()
    docs = corpus(20)
    vectors = m.embedder.embed([d.text for d in docs])
    assert m.import_vectors(docs, vectors) == 20
    assert m.import_vectors(docs, vectors) == 0
    head = m.store.max_seq()
    changed = Document(id="doc-4", text="Kites ride the sea breeze.", metadata={"topic": "kites"})
    new = Document(id="doc-new", text="Otters float while they sleep.")
    batch = [docs[0], changed, new]
    assert m.import_vectors(batch, m.embedder.embed([d.text for d in batch])) == 2
    assert [c[1] for c in m.store.changes_since(head)] == ["delete", "add", "add"]
    assert doc_ids(m.search("kites breeze", k=1, mode="keyword")) == ["doc-4"]
    assert doc_ids(m.search("otters sleep", k=1, mode="vector")) == ["doc-new"]
    assert doc_ids(m.search("uniq4", k=60, mode="keyword")) == []
    assert m.search("kites", k=1, where={"topic": "kites"})[0].doc_id == "doc-4"
    stats = m.stats()
    assert (stats["documents"], stats["chunks"]) == (21, 21)
    assert m.store.integrity_check() == "ok"
    twice = [new, Document(id="doc-new", text="Otters hold hands while they sleep.")]
    assert m.import_vectors(twice, m.embedder.embed([d.text for d in twice])) == 1
    assert "hold hands" in m.search("otters", k=1, mode="keyword")[0].text


def test_command_line(backend, open_memory, tmp_path, capsys):
    from engram.cli import main

    location = open_memory("cli").path  # a fresh, empty store
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("---\nyear: 2024\n---\n# Herons\nHerons hunt fish in shallows.")
    (notes / "b.txt").write_text("Owls hunt mice at night.")

    retrieval = retrieval_options(location).get("retrieval")
    chosen = ["--retrieval", retrieval] if retrieval else []

    def run(*argv):
        code = main(["--store", location, *chosen, *argv])
        out = capsys.readouterr().out
        assert code == 0, out
        return out

    assert json.loads(run("add", str(notes), "--json", "--quiet"))["added"] == 2
    hits = json.loads(run("search", "hunting at night", "--json", "--k", "2"))
    assert hits[0]["title"] == "b.txt" or "Owls" in hits[0]["text"]
    hits = json.loads(run("search", "hunt", "--where", "year>=2024", "--json"))
    assert [h["title"] for h in hits] == ["Herons"]
    stats = json.loads(run("stats", "--json"))
    assert stats["documents"] == 2 and stats["embedding_dim"] == 384
    assert "***" in stats["path"] or backend != "postgres"
    assert "keyword: 2 chunks" in run("reindex")


# -- PostgreSQL only: migrations, index upkeep ------------------------------------------------
@pytest.fixture
def pg_store(tmp_path):
    from engram.store.postgres import PostgresStore

    with store_location("postgres", tmp_path, "pgonly") as url:
        store = PostgresStore(url)
        yield store
        store.close()


def test_pg_migrations_are_tracked_and_forward_only(pg_store):
    from engram.errors import EngramError
    from engram.store.postgres import PostgresStore, migrations

    latest = migrations()[-1][0]
    assert pg_store.schema_version() == latest
    again = PostgresStore(pg_store.url)  # opening again applies nothing
    assert again.schema_version() == latest
    again.close()
    with pg_store.transaction() as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        assert [r[0] for r in rows] == [v for v, _, _ in migrations()]
        conn.execute("INSERT INTO schema_migrations VALUES (%s, 'future', 0)", (latest + 1,))
    with pytest.raises(EngramError, match="newer than this Engram"):
        PostgresStore(pg_store.url)


def test_pg_password_is_not_shown(pg_store):
    from engram.store.postgres import redact

    assert redact("postgresql://u:secret@h:5432/db?x=1") == "postgresql://u:***@h:5432/db?x=1"
    assert redact("postgresql://h/db?password=secret&a=b") == "postgresql://h/db?password=***&a=b"
    assert "secret" not in redact("postgres://u:secret@h/db")
    if "@" in pg_store.url.split("//", 1)[1].split("/", 1)[0]:
        password = pg_store.url.split("//", 1)[1].split("@", 1)[0].partition(":")[2]
        assert not password or password not in json.dumps(pg_store.stats())


def test_pg_reindex_recreates_a_dropped_vector_index(tmp_path, cached_embedder):
    pg_url()
    with (
        store_location("postgres", tmp_path, "reidx") as url,
        Memory(url, embedder=cached_embedder) as m,
    ):
        m.add(corpus(12))
        assert m.stats()["indexes"]["vector"]["index"].startswith("pgvector hnsw")
        with m.store.transaction() as conn:
            conn.execute("DROP INDEX vectors_hnsw")
        assert m.stats()["indexes"]["vector"]["index"] == "exact"
        expected = doc_ids(m.search("telescope", k=3, mode="vector"))
        assert m.reindex() == {"keyword": 12, "vector": 12}
        assert m.stats()["indexes"]["vector"]["index"].startswith("pgvector hnsw")
        assert doc_ids(m.search("telescope", k=3, mode="vector")) == expected


def test_pg_rejects_text_it_cannot_store(tmp_path, cached_embedder):
    from engram.errors import IngestError

    pg_url()
    with (
        store_location("postgres", tmp_path, "nul") as url,
        Memory(url, embedder=cached_embedder) as m,
    ):
        with pytest.raises(IngestError, match="doc-nul"):
            m.add({"id": "doc-nul", "text": "a NUL \x00 byte"})
        assert m.stats()["documents"] == 0


# -- typed filters: a range compares values of one type ----------------------------------------
def test_ranges_compare_values_of_one_type(open_memory):
    m = open_memory()
    years = {"y-unknown": "unknown", "y-2018": "2018", "y-2024": 2024, "y-2019": 2019}
    dates = {"y-unknown": "soon", "y-2018": "2018-06-01", "y-2024": "2024-02-29T10:00:00Z"}
    m.add(
        [
            Document(
                id=key,
                text=f"Yearly review {key}.",
                metadata={"year": year, **({"when": dates[key]} if key in dates else {})},
            )
            for key, year in years.items()
        ]
    )

    def found(where):
        return sorted(doc_ids(m.search("yearly review", k=10, mode="keyword", where=where)))

    assert found("year>=2020") == ["y-2024"]
    assert found({"year": {"$lt": 2020}}) == ["y-2019"]  # the text "2018" is not a number
    assert found("when>=2020-01-01") == ["y-2024"]  # "soon" is not a date
    assert found({"when": {"$lt": "2020-01-01"}}) == ["y-2018"]
    assert found("year<'z'") == ["y-2018", "y-unknown"]  # quoted: text with text only
    with pytest.raises(FilterError, match="not a number"):
        m.search("yearly review", where="year>=abc")
    with pytest.raises(FilterError, match="compare numbers, ISO dates or text"):
        m.search("yearly review", where={"year": {"$gte": True}})


def test_large_document_is_written_in_batches(open_memory):
    """More than 4 * embed_batch chunks: several transactions (append_chunks), one document."""
    m = open_memory(embed_batch=2, chunk_tokens=24)  # 8 chunks per transaction
    text = " ".join(f"Entry {i} notes that lamp {i} glows over bench {i * 3}." for i in range(40))
    report = m.add([Document(id="long", text=text)])
    assert report.added == 1 and report.chunks > 16
    assert m.stats()["chunks"] == report.chunks and m.stats()["documents"] == 1
    assert m.add([Document(id="long", text=text)]).unchanged == 1
    hits = m.search("lamp 37 glows", k=1, mode="keyword")
    assert doc_ids(hits) == ["long"] and "37" in hits[0].text
