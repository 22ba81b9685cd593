"""Learned fusion (``fusion = "learned"``, engram.recall.learned): keyword z-scores over the
keyword leg's documents plus weighted chunk and whole-document cosines, checked on numbers and
on a real store with the real embedder."""

from __future__ import annotations

import numpy as np
import pytest

from engram.errors import EngramError
from engram.recall.learned import cosines, keyword_z, learned_fuse

DOCS = [
    {"id": "purr", "text": "The cat will purr when its whiskers are stroked."},
    {"id": "feline", "text": "Whiskers help a cat judge narrow gaps in the dark."},
    {"id": "rocks", "text": "Granite forms when magma cools slowly underground."},
    {"id": "lava", "text": "Volcanoes erupt lava; the lava cools into basalt rock."},
]


def test_keyword_z_counts_each_document_once():
    doc_of = {1: "a", 2: "a", 3: "b", 4: "c"}
    z, floor = keyword_z([(1, 4.0), (2, 4.0), (3, 2.0), (4, 0.0)], doc_of)
    # documents a, b, c score 4, 2, 0: mean 2, std sqrt(8/3); a's two chunks do not weigh twice
    std = (8 / 3) ** 0.5
    assert z[1] == pytest.approx(2 / std) and z[2] == pytest.approx(2 / std)
    assert z[3] == pytest.approx(0.0) and floor == pytest.approx(-2 / std) == z[4]
    assert keyword_z([], doc_of) == ({}, 0.0)
    same, low = keyword_z([(1, 3.0), (3, 3.0)], doc_of)
    assert same == {1: 0.0, 3: 0.0} and low < 0  # a chunk outside the leg stays below


def test_learned_fuse_adds_weighted_cosines():
    doc_of = {1: "a", 2: "b", 3: "b"}
    kw = [(1, 2.0), (2, 1.0)]  # z: a +1, b -1
    cand = {1: 0.2, 2: 0.5, 3: 0.6}  # chunk 3: only in the vector leg, gets the lowest z
    doc_cos = {"a": 0.1, "b": 0.4}
    out = learned_fuse(kw, cand, doc_of, doc_cos, 10.0, 10.0)
    assert out == pytest.approx({1: 1 + 2 + 1, 2: -1 + 5 + 4, 3: -1 + 6 + 4})
    plain = learned_fuse(kw, cand, doc_of, doc_cos, 0.0, 0.0)
    assert plain == pytest.approx({1: 1.0, 2: -1.0, 3: -1.0})
    unit = cosines({"x": np.array([3.0, 4.0])}, np.array([1.0, 0.0]))
    assert unit["x"] == pytest.approx(0.6)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_learned_fusion_in_search_scores_by_its_formula(backend, tmp_path, embedder):
    """Whole-document keywords on SQLite, chunk keywords on PostgreSQL: the same formula."""
    from pg import store_location

    from engram.memory import Memory

    with (
        store_location(backend, tmp_path, "learned") as url,
        Memory(url, embedder=embedder, chunk_tokens=12, chunk_overlap=0) as mem,
    ):
        mem.add(DOCS)
        check_formula(mem)


def check_formula(mem) -> None:
    query = "why do cats purr"
    kw = [(h.id, h.score) for h in mem.search(query, k=50, mode="keyword")]
    mem.config = mem.config.replace(fusion="learned")
    hits = mem.search(query, k=50)
    qv = mem.embed_query(query)
    ids = [h.id for h in mem.search(query, k=50, mode="vector")]
    rows = mem.store.hit_rows(ids)
    doc_of = {cid: r["doc_id"] for cid, r in rows.items()}
    vecs = mem.retrieval.vectors_for(ids)
    by_doc: dict[str, np.ndarray] = {}
    for cid, v in vecs.items():
        by_doc[doc_of[cid]] = by_doc.get(doc_of[cid], 0) + v

    def cos(v: np.ndarray) -> float:
        return float(v @ qv / np.linalg.norm(v) / np.linalg.norm(qv))

    doc_cos = {d: cos(v) for d, v in by_doc.items()}
    z, floor = keyword_z(kw, doc_of)
    expected = {
        cid: z.get(cid, floor) + 10 * cos(vecs[cid]) + 10 * doc_cos[doc_of[cid]] for cid in ids
    }
    assert {h.id: h.score for h in hits} == pytest.approx(expected, abs=1e-4)
    assert hits[0].doc_id == "purr" and hits[-1].doc_id in ("rocks", "lava")
    mem.config = mem.config.replace(learned_document_weight=0.0, learned_cosine_weight=0.0)
    only_words = mem.search(query, k=50)
    assert {h.id: h.score for h in only_words} == pytest.approx(
        {cid: z.get(cid, floor) for cid in ids}, abs=1e-6
    )


def test_learned_fusion_refuses_bad_weights(make_memory):
    mem = make_memory()
    mem.add(DOCS[:2])
    mem.config = mem.config.replace(fusion="learned", learned_cosine_weight="ten")
    with pytest.raises(EngramError, match="learned_cosine_weight must be a finite number"):
        mem.search("cat", k=2)
    mem.config = mem.config.replace(fusion="learned", learned_cosine_weight=float("nan"))
    with pytest.raises(EngramError, match="learned_cosine_weight must be a finite number"):
        mem.search("cat", k=2)
    mem.config = mem.config.replace(fusion="mystery", learned_cosine_weight=10.0)
    with pytest.raises(EngramError, match="unknown fusion 'mystery'; use one of blend, rrf, lea"):
        mem.search("cat", k=2)


def test_search_command_takes_learned_fusion(make_memory, capsys, monkeypatch):
    import json

    from engram.cli import main

    mem = make_memory()
    mem.add(DOCS)
    mem.save()
    monkeypatch.setenv("ENGRAM_STORE", str(mem.path))
    assert main(["search", "why do cats purr", "--fusion", "learned", "--k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["doc_id"] for h in hits][0] == "purr" and len(hits) == 2
