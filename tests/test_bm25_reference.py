"""Keyword ranking agrees with an independent BM25 implementation (bm25s, Lucene variant)."""

from __future__ import annotations

import random

import bm25s
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram.index import keyword as keyword_module
from engram.index.analyzer import analyze, term_of, word_runs
from engram.index.keyword import KeywordIndex

WORDS = [
    "river",
    "bank",
    "money",
    "loan",
    "water",
    "fish",
    "boat",
    "bridge",
    "city",
    "tower",
    "light",
    "house",
    "garden",
    "flower",
    "tree",
    "root",
    "leaf",
    "stone",
    "wall",
    "castle",
    "king",
    "queen",
    "court",
    "law",
    "judge",
    "trial",
    "witness",
    "paper",
    "ink",
    "letter",
    "poem",
    "song",
    "music",
    "drum",
    "violin",
    "piano",
]


def make_corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(WORDS))]  # Zipf-like
    return [" ".join(rng.choices(WORDS, weights, k=rng.randint(3, 40))) for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scores_match_bm25s(seed):
    k1, b = 0.9, 0.4
    docs = make_corpus(300, seed)
    ours = KeywordIndex(None, k1=k1, b=b, memtable_docs=97)  # several segments and a merge
    ours.add([(i + 1, text, None) for i, text in enumerate(docs)])
    ref = bm25s.BM25(k1=k1, b=b, method="lucene")
    ref.index([analyze(d) for d in docs], show_progress=False)
    rng = random.Random(seed + 100)
    for _ in range(25):
        query = " ".join(rng.sample(WORDS, rng.randint(1, 4)))
        expected = ref.get_scores(analyze(query))
        got = dict(ours.search(query, k=len(docs)))
        mine = np.array([got.get(i + 1, 0.0) for i in range(len(docs))])
        # bm25s leaves out the constant (k1 + 1) factor, which does not change rankings
        np.testing.assert_allclose(mine, expected * (k1 + 1), rtol=1e-4, atol=1e-5)
        top_ref = [i + 1 for i in np.argsort(-expected, kind="stable")[:10] if expected[i] > 0]
        top_ours = [cid for cid, _ in ours.search(query, k=10)]
        # the same ranking: position by position the same score (ties may swap ids)
        assert len(top_ours) == len(top_ref)
        np.testing.assert_allclose(
            [got[c] for c in top_ours],
            [expected[c - 1] * (k1 + 1) for c in top_ref],
            rtol=1e-4,
            atol=1e-5,
        )


def test_deleted_and_filtered_documents_are_skipped():
    idx = KeywordIndex(None)
    idx.add([(1, "apple pie", None), (2, "apple tart", None), (3, "apple juice", None)])
    idx.remove([2])
    assert [c for c, _ in idx.search("apple", k=10)] in ([1, 3], [3, 1])
    assert [c for c, _ in idx.search("apple", k=10, allowed=np.array([3]))] == [3]


def test_saved_index_scores_like_the_live_one(tmp_path):
    docs = make_corpus(200, 7)
    idx = KeywordIndex(tmp_path / "kw", memtable_docs=64)
    idx.add([(i + 1, d, None) for i, d in enumerate(docs)])
    idx.remove([5, 6])
    idx.last_seq = 202
    idx.save()
    again = KeywordIndex(tmp_path / "kw")
    assert again.load() and again.last_seq == 202
    for q in ("river bank", "queen court law", "violin"):
        assert again.search(q, k=20) == idx.search(q, k=20)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_bulk_word_runs_give_the_terms_of_analyze(text):
    """Indexing cuts words with ``word_runs`` and maps each through ``term_of`` (memoised);
    the terms must be exactly those ``analyze`` gives, which queries use."""
    terms = [term_of(w) for w in word_runs(text)]
    assert [t for t in terms if t is not None] == analyze(text)


def test_word_memo_overflow_indexes_the_same(monkeypatch):
    docs = make_corpus(120, 5) + ["Ünïcödé wörds, digits 7 8 and a_b c", "x y z 1 22"]
    whole = KeywordIndex(None)
    whole.add([(i + 1, d, None) for i, d in enumerate(docs)])
    monkeypatch.setattr(keyword_module, "_WORD_MEMO", 5)  # almost every word misses the memo
    small = KeywordIndex(None)
    small.add([(i + 1, d, None) for i, d in enumerate(docs)])
    assert len(small._word_ids) <= 5
    for query in ("piano drum", "wörds digits 7", "a_b 22", "music letter ink"):
        assert small.search(query, k=20) == whole.search(query, k=20)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), max_size=6),
    st.lists(st.sampled_from(["the", "Heron", "herons", "river's", "7", "a", "Ünï"]), max_size=9),
)
def test_cut_batches_count_the_terms_of_analyze(texts, words):
    """The word pool's worker counts each text's terms (``cutting.Cutter``): per text, the
    counts of ``analyze``'s terms, numbered consistently across batches, and ``of_texts``
    keeps the chosen texts' counts."""
    from collections import Counter

    from engram.index.cutting import Cutter

    batches = [texts + [" ".join(words)], [" ".join(reversed(words))] + texts[:2]]
    cutter, terms = Cutter("english"), []
    for batch in batches:
        cut = cutter.cut(batch)
        terms += cut.new
        assert len(cut.lengths) == len(batch) and np.all(np.diff(cut.cols) >= 0)
        for j, text in enumerate(batch):
            mine = cut.cols == j
            got = {terms[t]: int(n) for t, n in zip(cut.terms[mine], cut.tfs[mine], strict=True)}
            assert got == Counter(analyze(text)) and cut.lengths[j] == len(analyze(text))
        keep = np.arange(len(batch)) % 2 == 1
        part = cut.of_texts(keep)
        for j, text in enumerate(t for t, k in zip(batch, keep, strict=True) if k):
            mine = part.cols == j
            got = {terms[t]: int(n) for t, n in zip(part.terms[mine], part.tfs[mine], strict=True)}
            assert got == Counter(analyze(text))
    assert len(set(terms)) == len(terms) == len(cutter.terms)
