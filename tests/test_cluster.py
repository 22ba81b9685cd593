"""Cluster stage: grouping, near-duplicate removal, ordering and c-TF-IDF labels."""

from __future__ import annotations

import numpy as np

from engram.cluster import Cluster, c_tf_idf, cluster_hits, label_clusters
from engram.index.analyzer import tokenize
from engram.types import Hit

COOKING = [
    "Baking bread needs flour, water, yeast and a hot oven.",
    "Sourdough bread rises slowly; knead the dough and bake it in the oven.",
    "Preheat the oven before baking the bread loaves.",
]
ASTRONOMY = [
    "Jupiter is the largest planet orbiting the sun.",
    "Saturn's rings orbit the planet; telescopes show planets clearly.",
]


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v / np.linalg.norm(v)


def _topic_hits() -> list[Hit]:
    # Within a topic cosine ~0.86 (same cluster, not duplicates); across topics <= ~0.14.
    vectors = [_unit(1, 0, 0.4, 0, 0), _unit(1, 0, 0, 0.4, 0), _unit(1, 0, 0, 0, 0.4)]
    vectors += [_unit(0, 1, 0.4, 0, 0), _unit(0, 1, 0, 0, 0.4)]
    scores = [0.9, 0.5, 0.4, 0.8, 0.7]
    return [
        Hit(id=i + 1, text=t, score=s, vector=v)
        for i, (t, s, v) in enumerate(zip(COOKING + ASTRONOMY, scores, vectors, strict=True))
    ]


def test_two_topics_give_two_labelled_clusters():
    clusters = cluster_hits(_topic_hits())
    assert len(clusters) == 2
    bread, space = clusters
    assert bread.ids == [1, 2, 3] and space.ids == [4, 5]
    assert bread.score == 0.9 and space.score == 0.8
    bread_words = bread.label.split(", ")
    assert len(bread_words) == 3
    assert "bread" in bread_words and "oven" in bread_words
    assert "planet" in space.label.split(", ")  # "planet" x2 beats "planets" x1
    # Surface forms, not stems: every keyword is a word of the texts.
    assert "orbiting" in space.keywords and "orbit" not in space.keywords
    assert "baking" in bread.keywords and "bake" not in bread.keywords
    assert set(space.keywords) <= set(tokenize(" ".join(ASTRONOMY)))
    assert set(bread.keywords) <= set(tokenize(" ".join(COOKING)))


def test_labels_show_surface_words_not_stems():
    (only,) = label_clusters([["Running runners ran. Running daily."]], max_terms=2)
    label, keywords = only
    assert keywords[0] == "running"  # stem "run", most frequent surface form "running"
    assert label == ", ".join(keywords[:2])


def test_c_tf_idf_prefers_terms_distinctive_to_a_cluster():
    from collections import Counter

    weights = c_tf_idf([Counter({"bread": 3, "common": 3}), Counter({"star": 3, "common": 3})])
    assert weights[0]["bread"] > weights[0]["common"]
    assert weights[1]["star"] > weights[1]["common"]


def test_explicit_vectors_override_hit_vectors():
    hits = _topic_hits()
    vectors = np.vstack([_unit(1, 0, 0, 0, 0)] * 5)  # everything identical -> all near-duplicates
    for hit in hits:
        hit.vector = None
    (cluster,) = cluster_hits(hits, vectors)
    assert cluster.ids == [1]


def test_near_duplicates_dropped_keeping_higher_score():
    hits = _topic_hits()
    hits.append(Hit(id=10, text="JUPITER is the largest planet,  orbiting the Sun!", score=0.95))
    hits.append(Hit(id=11, text="Saturn has rings", score=0.1, vector=_unit(0, 1, 0, 0.05, 0.4)))
    hits[-2].vector = _unit(0, 1, 0, 0.4, 0)  # not a vector duplicate; text duplicate of hit 4
    clusters = cluster_hits(hits)
    ids = [i for c in clusters for i in c.ids]
    assert 10 in ids and 4 not in ids  # same normalised text: higher score kept
    assert 5 in ids and 11 not in ids  # cosine >= 0.95 with hit 5
    assert len(ids) == len(set(ids))


def test_clusters_ordered_by_best_score_and_hits_by_score():
    hits = _topic_hits()
    hits[3].score = 0.99  # astronomy now holds the best hit
    clusters = cluster_hits(list(reversed(hits)))
    assert [c.score for c in clusters] == [0.99, 0.9]
    for c in clusters:
        scores = [h.score for h in c.hits]
        assert scores == sorted(scores, reverse=True)


def test_deterministic():
    first = cluster_hits(_topic_hits())
    for _ in range(3):
        again = cluster_hits(_topic_hits())
        assert [(c.label, c.keywords, c.ids, c.score) for c in again] == [
            (c.label, c.keywords, c.ids, c.score) for c in first
        ]


def test_tfidf_fallback_without_vectors():
    hits = [Hit(id=h.id, text=h.text, score=h.score) for h in _topic_hits()]
    clusters = cluster_hits(hits, threshold=0.95)
    assert {frozenset(c.ids) for c in clusters} == {frozenset({1, 2, 3}), frozenset({4, 5})}


def test_single_hit_and_empty():
    assert cluster_hits([]) == []
    (only,) = cluster_hits([Hit(id=7, text="Whales sing long songs underwater.", score=0.3)])
    assert isinstance(only, Cluster)
    assert only.ids == [7] and only.score == 0.3
    assert only.label == "whales, sing, long"


def test_label_fallback_when_no_terms():
    (only,) = cluster_hits([Hit(id=1, text="the and of", score=1.0, title="Notes")])
    assert only.label == "Notes"
