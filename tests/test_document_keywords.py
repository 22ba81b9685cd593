"""Keyword scoring over whole documents (``keyword_scope = "document"``, ``title_weight``):
exact BM25 of each document's text and title, on real SQLite stores with the real embedder,
kept correct through filters, namespaces, updates, deletes, reopening and damage."""

from __future__ import annotations

import shutil

import pytest

from engram.errors import EngramError
from engram.index.documents import join_chunks
from engram.index.keyword import KeywordIndex

FILLER = " ".join(f"Sentence {w} mentions nothing of note today." for w in "abcdefghijkl")
DOCS = [
    {  # the two query words in different chunks of one document
        "id": "split",
        "title": "Field notes",
        "text": f"The glacier moved. {FILLER} The basalt cracked.",
        "metadata": {"team": "red"},
    },
    {
        "id": "glacier",
        "title": "Ice",
        "text": "A glacier glacier carves a valley.",
        "metadata": {"team": "red"},
    },
    {
        "id": "basalt",
        "title": "Basalt",
        "text": "Lava cools into dark rock.",
        "metadata": {"team": "blue"},
    },
    {
        "id": "other",
        "title": "Bread",
        "text": "Flour, water and salt make bread.",
        "metadata": {"team": "blue"},
    },
]
SMALL = {"chunk_tokens": 24, "chunk_overlap": 6}


def reference(docs, query: str, field: str = "text") -> dict[str, float]:
    """BM25 of each document's whole text (or title), from an index of the documents."""
    index = KeywordIndex(None)
    index.add([(i, d.get(field, ""), None) for i, d in enumerate(docs)])
    return {docs[i]["id"]: s for i, s in index.search(query, len(docs))}


def keyword_scores(mem, query: str, **search) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for h in mem.search(query, k=50, mode="keyword", **search):
        out.setdefault(h.doc_id, []).append(h.score)
    return out


def test_join_chunks_reads_overlaps_once():
    text = "one two three four five six"
    chunks = [(1, 0, 13, text[0:13]), (2, 8, 23, text[8:23]), (3, 19, 27, text[19:27])]
    assert join_chunks(chunks) == text
    assert join_chunks([(1, 0, 0, "no span"), (2, 0, 0, "recorded")]) == "no span recorded"
    assert join_chunks([(1, 0, 3, "one"), (2, 8, 13, "three")]) == "one three"


def test_document_scope_scores_each_chunk_by_its_whole_documents_bm25(make_memory):
    mem = make_memory(keyword_scope="document", title_weight=0.0, **SMALL)
    mem.add(DOCS)
    split_chunks = [
        h for h in mem.search("zzz glacier", k=50, mode="keyword") if h.doc_id == "split"
    ]
    assert len(split_chunks) >= 3  # the document really is several chunks
    want = reference(DOCS, "glacier basalt")
    got = keyword_scores(mem, "glacier basalt")
    assert set(got) == set(want)
    for doc, scores in got.items():
        assert scores == pytest.approx([want[doc]] * len(scores), rel=1e-5)
    assert max(got, key=lambda d: got[d][0]) == "split"  # both words, in different chunks
    top = mem.search("glacier basalt cracked", k=1, mode="keyword")[0]
    assert top.doc_id == "split" and "basalt" in top.text  # its best chunk comes first
    chunk = make_memory("chunk.db", keyword_scope="chunk", **SMALL)
    chunk.add(DOCS)
    per_chunk = keyword_scores(chunk, "glacier basalt")["split"]
    assert len(set(per_chunk)) == 2 and max(per_chunk) != got["split"][0]  # one word each


def test_title_weight_adds_the_titles_bm25(make_memory):
    mem = make_memory(keyword_scope="document", title_weight=0.5)
    mem.add(DOCS)
    body, title = reference(DOCS, "basalt rock"), reference(DOCS, "basalt rock", "title")
    got = keyword_scores(mem, "basalt rock")
    for doc, scores in got.items():
        assert scores[0] == pytest.approx(body.get(doc, 0) + 0.5 * title.get(doc, 0), rel=1e-5)
    assert title["basalt"] > 0 and "split" in got  # a body match and a title match both count
    plain = keyword_scores(make_memory("plain.db", title_weight=0.0), "basalt rock")
    assert plain == {} or "basalt" not in plain or plain["basalt"][0] < got["basalt"][0]


def test_filters_and_namespaces_hold(make_memory):
    mem = make_memory(keyword_scope="document", **SMALL)
    mem.add(DOCS)
    mem.add([{"id": "elsewhere", "text": "A glacier in another namespace."}], namespace="b")
    assert set(keyword_scores(mem, "glacier", where={"team": "blue"})) == set()
    assert set(keyword_scores(mem, "glacier", where={"team": "red"})) == {"split", "glacier"}
    assert set(keyword_scores(mem, "glacier", namespace="b")) == {"elsewhere"}
    assert "elsewhere" not in keyword_scores(mem, "glacier")
    hybrid = mem.search("glacier", k=10, where={"team": "red"})
    assert hybrid and {h.doc_id for h in hybrid} <= {"split", "glacier"}


def test_updates_and_deletes_are_followed_also_across_reopening(tmp_path, make_memory):
    mem = make_memory(keyword_scope="document", **SMALL)
    mem.add(DOCS)
    mem.add([{"id": "glacier", "text": "Moraine and scree."}])  # replaced: glacier gone
    assert set(keyword_scores(mem, "glacier")) == {"split"}
    assert set(keyword_scores(mem, "moraine")) == {"glacier"}
    mem.delete(["split"])
    assert keyword_scores(mem, "glacier") == {}
    mem.close()
    with_chunks = make_memory(keyword_scope="chunk", **SMALL)  # same store, chunk scope
    with_chunks.add([{"id": "late", "text": "A glacier added while scoring chunks."}])
    with_chunks.delete(["basalt"])
    with_chunks.close()
    again = make_memory(keyword_scope="document", **SMALL)
    assert set(keyword_scores(again, "glacier")) == {"late"}
    assert keyword_scores(again, "lava") == {}
    index = again.retrieval.document_index
    live = set(again.store.chunk_ids().tolist())
    assert set(index.live_chunk_ids().tolist()) == live


def test_a_damaged_or_mismatched_document_index_is_rebuilt(tmp_path, make_memory):
    from engram.check import check_store

    mem = make_memory(keyword_scope="document", title_weight=0.3, **SMALL)
    mem.add(DOCS)
    want = keyword_scores(mem, "glacier basalt")
    mem.close()
    assert all(f.ok for f in check_store(tmp_path / "m.db"))
    shutil.rmtree(tmp_path / "m.db.index" / "document" / "title")  # titles lost
    again = make_memory(keyword_scope="document", title_weight=0.3, **SMALL)
    assert keyword_scores(again, "glacier basalt") == want
    again.close()
    segs = tmp_path / "m.db.index" / "document" / "segments"
    victim = next(p for p in segs.iterdir() if p.name.startswith("docmap-"))
    victim.write_bytes(b"garbage")
    assert not all(f.ok for f in check_store(tmp_path / "m.db"))
    third = make_memory(keyword_scope="document", title_weight=0.3, **SMALL)
    assert keyword_scores(third, "glacier basalt") == want


def test_bad_settings_and_backends_without_documents_fail_clearly(make_memory):
    with pytest.raises(EngramError, match="unknown keyword_scope 'page'"):
        make_memory(keyword_scope="page")
    with pytest.raises(EngramError, match="title_weight"):
        make_memory(title_weight="heavy")
    mem = make_memory()
    mem.add(DOCS[:1])
    mem.config = mem.config.replace(keyword_scope="document", title_weight=-1.0)
    with pytest.raises(EngramError, match="title_weight"):
        mem.search("glacier")


def test_postgres_refuses_document_scope(embedder):
    from pg import store_location

    from engram.memory import Memory

    with (
        store_location("postgres", None, "docscope") as url,
        Memory(url, embedder=embedder, keyword_scope="document") as mem,
    ):
        mem.add(DOCS[:1])
        with pytest.raises(EngramError, match="needs the local retrieval backend"):
            mem.search("glacier")
        assert mem.search("glacier", mode="vector")  # the keyword leg alone refuses
        mem.config = mem.config.replace(keyword_scope="auto")  # the default: chunks here
        assert [h.doc_id for h in mem.search("glacier", mode="keyword")] == ["split"]


def test_the_default_scores_documents_with_titles_on_the_local_backend(make_memory):
    mem = make_memory(**SMALL)
    mem.add(DOCS)
    assert (mem.config.keyword_scope, mem.config.title_weight) == ("auto", 0.1)
    body, title = reference(DOCS, "glacier basalt"), reference(DOCS, "glacier basalt", "title")
    got = keyword_scores(mem, "glacier basalt")
    assert got["split"][0] == pytest.approx(body["split"] + 0.1 * title.get("split", 0), rel=1e-5)
    assert got["basalt"][0] == pytest.approx(0.1 * title["basalt"], rel=1e-5)  # title only


def test_a_postgres_store_with_local_index_files_scores_documents(tmp_path, embedder):
    from pg import store_location

    from engram.memory import Memory

    folder = f"local:{tmp_path / 'idx'}"
    with (
        store_location("postgres", tmp_path, "docfiles") as url,
        Memory(url, embedder=embedder, retrieval=folder, title_weight=0.0, **SMALL) as mem,
    ):
        mem.add(DOCS)
        want = reference(DOCS, "glacier basalt")
        got = keyword_scores(mem, "glacier basalt")
        assert set(got) == set(want) and len(got["split"]) >= 3
        for doc, scores in got.items():
            assert scores == pytest.approx([want[doc]] * len(scores), rel=1e-5)
        mem.delete(["split"])
        assert "split" not in keyword_scores(mem, "glacier basalt")


def test_bulk_imports_keep_document_and_title_scores_exact(make_memory, embedder, monkeypatch):
    from engram.retrieval.local import LocalRetrieval
    from engram.types import Document

    def refuse(self, autosave=True):
        raise AssertionError("a bulk batch was caught up from the changelog, not from memory")

    mem = make_memory(title_weight=0.5)
    docs = [Document(id=d["id"], text=d["text"], title=d["title"]) for d in DOCS]
    mem.sync()
    monkeypatch.setattr(LocalRetrieval, "sync", refuse)
    mem.import_vectors(docs, embedder.embed([d.text for d in docs]), batch=3)
    changed = [Document(id="glacier", text="Moraine and scree.", title="Basalt ice")]
    mem.import_vectors(changed, embedder.embed([changed[0].text]), batch=3)
    monkeypatch.undo()
    # the replaced version stays in the statistics until a rebuild (as in Lucene), unreturned
    now = [{**d, "id": "replaced"} if d["id"] == "glacier" else d for d in DOCS]
    now += [{"id": "glacier", "text": "Moraine and scree.", "title": "Basalt ice"}]
    for query in ("glacier basalt", "moraine ice"):
        body, title = reference(now, query), reference(now, query, "title")
        got = keyword_scores(mem, query)
        assert set(got) == (set(body) | set(title)) - {"replaced"}
        for doc, scores in got.items():
            want = body.get(doc, 0) + 0.5 * title.get(doc, 0)
            assert scores[0] == pytest.approx(want, rel=1e-5)
