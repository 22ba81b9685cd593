"""Learned fusion (``fusion = "learned"``): a linear mix of the legs fitted on SciFact's train
split (docs/benchmarks.md, issue 18).

A chunk scores ``z + learned_cosine_weight * cos(chunk) + learned_document_weight *
cos(document)``: ``z`` is its keyword score standardised over the keyword leg's documents (each
document once, at its best chunk; a chunk the keyword leg did not return gets the lowest ``z``
there), ``cos(chunk)`` its own cosine to the query, not min-max normalised, and ``cos(document)``
the cosine of its document's whole-document vector (the normalised mean of all its chunks'
vectors). So a document ranks by its best chunk's cosine plus its whole-document cosine, on top
of how far its keyword score stands above the keyword leg's mean.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

import numpy as np

from engram.recall.fusion import Ranking

K = TypeVar("K", bound=Hashable)


def keyword_z(keyword: Ranking, doc_of: Mapping[int, object]) -> tuple[dict[int, float], float]:
    """Each keyword chunk's score as a z-score over the leg's documents (each at its best
    chunk), and the lowest of them (what a chunk missing from the leg gets)."""
    best: dict[object, float] = {}
    for cid, s in keyword:
        doc = doc_of.get(cid, cid)
        best[doc] = max(best.get(doc, s), s)
    if not best:
        return {}, 0.0
    scores = np.array(list(best.values()), dtype=np.float64)
    mean, std = float(scores.mean()), float(scores.std())
    if std == 0.0:  # one document, or all alike: the leg says "these", not "which first"
        return {cid: 0.0 for cid, _ in keyword}, -1.0
    z = {cid: (s - mean) / std for cid, s in keyword}
    return z, float((scores.min() - mean) / std)


def learned_fuse(
    keyword: Ranking,
    candidates: Mapping[int, float],
    doc_of: Mapping[int, object],
    doc_cosine: Mapping[object, float],
    cosine_weight: float,
    document_weight: float,
) -> dict[int, float]:
    """Scores of every candidate chunk: ``candidates`` maps each chunk of either leg to its
    own cosine to the query, ``doc_cosine`` each document to its whole-document cosine."""
    z, floor = keyword_z(keyword, doc_of)
    return {
        cid: z.get(cid, floor)
        + cosine_weight * cos
        + document_weight * doc_cosine.get(doc_of.get(cid, cid), 0.0)
        for cid, cos in candidates.items()
    }


def cosines(vectors: Mapping[K, np.ndarray], query_vector: np.ndarray) -> dict[K, float]:
    """Cosine of each vector to the query (vectors need not be normalised)."""
    q = np.asarray(query_vector, dtype=np.float32)
    qn = float(np.linalg.norm(q)) or 1.0
    out = {}
    for key, v in vectors.items():
        vn = float(np.linalg.norm(v)) or 1.0
        out[key] = float(np.dot(v, q)) / (vn * qn)
    return out
