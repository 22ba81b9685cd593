"""Document-level scoring from chunk scores.

``pool_documents`` lets a document's other recalled chunks add to its best one: with chunk
scores ``s1 >= s2 >= ...`` the document scores ``s1 + decay * s2 + decay**2 * s3 ...`` and
every chunk of it moves by the same amount (their order within the document is kept), so the
best chunk carries the document's score. ``decay`` 0 is "a document is its best chunk".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def pool_documents(
    fused: Mapping[int, float], doc_of: Mapping[int, object], decay: float
) -> dict[int, float]:
    """Chunk scores shifted so each document's best chunk scores as the pooled document."""
    if not decay:
        return dict(fused)
    groups: dict[object, list[float]] = {}
    for cid, s in fused.items():
        groups.setdefault(doc_of.get(cid, cid), []).append(s)
    bonus = {}
    for doc, scores in groups.items():
        scores.sort(reverse=True)
        bonus[doc] = sum(decay**i * s for i, s in enumerate(scores[1:], start=1))
    return {cid: s + bonus[doc_of.get(cid, cid)] for cid, s in fused.items()}


def document_vectors(
    chunk_vectors: Mapping[int, np.ndarray], doc_of: Mapping[int, object]
) -> dict[object, np.ndarray]:
    """A whole-document vector per document: the normalised mean of its chunks' vectors."""
    sums: dict[object, np.ndarray] = {}
    for cid, v in chunk_vectors.items():
        doc = doc_of.get(cid, cid)
        sums[doc] = sums[doc] + v if doc in sums else np.array(v, dtype=np.float32)
    out = {}
    for doc, v in sums.items():
        norm = float(np.linalg.norm(v))
        out[doc] = v / norm if norm > 0 else v
    return out


def add_document_vectors(
    fused: Mapping[int, float],
    doc_of: Mapping[int, object],
    doc_vectors: Mapping[object, np.ndarray],
    query_vector: np.ndarray,
    weight: float,
) -> dict[int, float]:
    """Each chunk gains ``weight`` times its document's vector cosine to the query,
    min-max normalised over the candidate documents."""
    if not weight or not doc_vectors:
        return dict(fused)
    cos = {d: float(np.dot(v, query_vector)) for d, v in doc_vectors.items()}
    lo, hi = min(cos.values()), max(cos.values())
    norm = {d: (c - lo) / (hi - lo) if hi > lo else 1.0 for d, c in cos.items()}
    return {cid: s + weight * norm.get(doc_of.get(cid, cid), 0.0) for cid, s in fused.items()}
