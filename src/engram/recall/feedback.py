"""Pseudo-relevance feedback: RM3-style keyword expansion and Rocchio on the query vector.

Both read the first pass's top ``docs`` candidates as if they were relevant:

* ``expansion_terms``: the analyzed terms of those passages weighted as in RM3 (each
  passage's term frequencies over its length, times the passage's share of the softmax of
  the first-pass scores), the query's own terms left out; the best ``terms`` of them form a
  second keyword query whose scores are added, times ``weight``, to the first's;
* ``rocchio``: the query vector plus ``weight`` times the mean of those passages' vectors,
  renormalised; the vector leg is searched again with it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from engram.index.analyzer import analyze
from engram.recall.fusion import Ranking


def expansion_terms(
    query: str,
    passages: Sequence[tuple[str, float]],
    terms: int,
    language: str = "english",
) -> list[str]:
    """The ``terms`` best RM3 feedback terms of ``passages`` (``(text, score)``, best first)."""
    if not passages or terms <= 0:
        return []
    top = max(s for _, s in passages)
    shares = [math.exp(s - top) for _, s in passages]
    total = sum(shares)
    own = set(analyze(query, language))
    weights: dict[str, float] = {}
    for (text, _), share in zip(passages, shares, strict=True):
        words = analyze(text, language)
        if not words:
            continue
        for term, n in Counter(words).items():
            if term not in own and not term.isdigit():
                weights[term] = weights.get(term, 0.0) + share / total * n / len(words)
    return sorted(weights, key=lambda t: (-weights[t], t))[:terms]


def add_rankings(first: Ranking, second: Ranking, weight: float) -> list[tuple[int, float]]:
    """``first`` plus ``weight`` times ``second`` (a missing candidate scores 0 there)."""
    out: dict[int, float] = dict(first)
    for cid, s in second:
        out[cid] = out.get(cid, 0.0) + weight * s
    return sorted(out.items(), key=lambda x: (-x[1], x[0]))


def rocchio(
    query_vector: np.ndarray,
    vectors: Mapping[int, np.ndarray] | Sequence[np.ndarray],
    weight: float,
) -> np.ndarray:
    """``query + weight * mean(vectors)``, renormalised to unit length."""
    vs = list(vectors.values()) if isinstance(vectors, Mapping) else list(vectors)
    if not vs or not weight:
        return query_vector
    q = np.asarray(query_vector, dtype=np.float32) + weight * np.mean(vs, axis=0)
    norm = float(np.linalg.norm(q))
    return (q / norm).astype(np.float32) if norm > 0 else query_vector
