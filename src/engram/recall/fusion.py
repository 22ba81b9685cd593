"""Fusion of keyword and vector rankings: reciprocal rank, or a min-max-normalised blend (the
third, ``learned``, reads stored vectors and lives in ``recall/learned.py``)."""

from __future__ import annotations

from collections.abc import Sequence

Ranking = Sequence[tuple[int, float]]  # (chunk id, score), best first


def rrf(
    rankings: Sequence[Ranking], k: int = 60, weights: Sequence[float] | None = None
) -> dict[int, float]:
    """Reciprocal rank fusion (Cormack et al. 2009): sum of ``w / (k + rank)``."""
    weights = weights or [1.0] * len(rankings)
    out: dict[int, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, (cid, _) in enumerate(ranking, start=1):
            out[cid] = out.get(cid, 0.0) + w / (k + rank)
    return out


def minmax(ranking: Ranking) -> dict[int, float]:
    """Scores rescaled to [0, 1] over the ranking's own candidates."""
    if not ranking:
        return {}
    scores = [s for _, s in ranking]
    lo, hi = min(scores), max(scores)
    span = hi - lo
    return {cid: (s - lo) / span if span > 0 else 1.0 for cid, s in ranking}


def blend(keyword: Ranking, vector: Ranking, alpha: float = 0.5) -> dict[int, float]:
    """Weaviate-style relative score fusion: ``alpha * vector + (1 - alpha) * keyword``.

    ``alpha`` 0 is keywords only, 1 vectors only; a candidate missing from one list scores 0
    there.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    kw, vec = minmax(keyword), minmax(vector)
    return {
        cid: alpha * vec.get(cid, 0.0) + (1 - alpha) * kw.get(cid, 0.0)
        for cid in kw.keys() | vec.keys()
    }


FUSIONS = ("blend", "rrf", "learned")  # learned: engram.recall.learned, run by the Recaller


def fuse(
    keyword: Ranking, vector: Ranking, *, mode: str, fusion: str, alpha: float, rrf_k: int
) -> dict[int, float]:
    """One score per candidate: a single retriever's own, else ``rrf`` or ``blend``."""
    if mode == "keyword":
        return dict(keyword)
    if mode == "vector":
        return dict(vector)
    if fusion == "rrf":
        if alpha in (0.0, 1.0):
            return dict(keyword if alpha == 0 else vector)
        return rrf([keyword, vector], k=rrf_k, weights=[1 - alpha, alpha])
    if fusion == "learned":
        raise ValueError("fusion 'learned' reads stored vectors: the Recaller runs it")
    return blend(keyword, vector, alpha)
