"""Per-hit explanation of a recall: each retriever's score and rank, and the fused score."""

from __future__ import annotations

from engram.recall.fusion import Ranking


class Explainer:
    """Looks up where a chunk stood in each retriever's ranking."""

    def __init__(self, keyword: Ranking, vector: Ranking):
        self._keyword = {cid: (r, s) for r, (cid, s) in enumerate(keyword, 1)}
        self._vector = {cid: (r, s) for r, (cid, s) in enumerate(vector, 1)}

    def scores(self, cid: int, fused: float) -> dict[str, float]:
        """``fused``, plus ``keyword``/``keyword_rank`` and ``vector``/``vector_rank`` where
        that retriever found the chunk."""
        out: dict[str, float] = {"fused": fused}
        if cid in self._keyword:
            out["keyword_rank"], out["keyword"] = self._keyword[cid]
        if cid in self._vector:
            out["vector_rank"], out["vector"] = self._vector[cid]
        return out
