"""Per-query fusion weight from the two legs' score distributions.

A leg whose best candidate stands far above its next ones is confident about this query; a
flat leg is guessing. With each leg's scores min-max normalised over its candidates, a leg's
confidence is one minus the mean normalised score of its ranks 2..``depth``. The vector weight
moves from the configured ``alpha`` towards the more confident leg:
``alpha + gain * (confidence(vector) - confidence(keyword))``, clipped to [0.1, 0.9].
"""

from __future__ import annotations

from engram.recall.fusion import Ranking, minmax


def confidence(ranking: Ranking, depth: int = 10) -> float:
    """How far the best candidate stands above ranks 2..``depth`` (0 flat, 1 alone)."""
    if len(ranking) < 2:
        return 1.0 if ranking else 0.0
    norm = minmax(ranking)
    rest = [norm[cid] for cid, _ in ranking[1:depth]]
    return 1.0 - sum(rest) / len(rest)


def adaptive_alpha(
    keyword: Ranking, vector: Ranking, alpha: float, gain: float, depth: int = 10
) -> float:
    """The vector weight for this query (``alpha`` when ``gain`` is 0 or a leg is empty)."""
    if not gain or not keyword or not vector:
        return alpha
    shift = gain * (confidence(vector, depth) - confidence(keyword, depth))
    return min(0.9, max(0.1, alpha + shift))
