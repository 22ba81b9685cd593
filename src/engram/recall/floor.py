"""The similarity floor of the answer path: which recalled hits count as evidence."""

from __future__ import annotations

import numpy as np

from engram.index.analyzer import analyze
from engram.recall.settings import EvidenceFloor
from engram.types import Hit


def apply_floor(
    question: str, hits: list[Hit], query_vector: np.ndarray, floor: EvidenceFloor
) -> list[Hit]:
    """The hits that are evidence, each given its cosine to the question
    (``scores["similarity"]``) and the share of the question's terms it holds
    (``scores["coverage"]``). A long passage holding the question's rare words can sit at a
    low cosine, hence the second way in."""
    terms = set(analyze(question, floor.language))
    out = []
    for h in hits:
        h.scores["similarity"] = (
            float(np.dot(h.vector, query_vector)) if h.vector is not None else 0.0
        )
        found = terms & set(analyze(f"{h.title} {h.text}", floor.language))
        h.scores["coverage"] = len(found) / len(terms) if terms else 0.0
        if (
            h.scores["similarity"] >= floor.min_similarity
            or h.scores["coverage"] >= floor.min_term_coverage
        ):
            out.append(h)
    return out
