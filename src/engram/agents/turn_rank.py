"""A learned ranker over conversation turns for ``AgentMemory.recall``.

Turn windows (``windows``) score each candidate by a fixed blend. The ranker re-orders the best
``WindowWeights.ranked`` of them by a linear score (``recall/linear.py``) over features read
from the same candidates: the window score and its gap to the best, the turn's own cosine,
its window's BM25, the previous turn's blend, the reciprocal rank of its own BM25, whether the
one speaker the query names said it (or another speaker did), its length, whether it asks a
question, and its session's share of the scores. Nothing is stored.

The weights (``DEFAULT_TURN_RANKER``) were fitted on the five LoCoMo conversations of
``../shared/data`` (``evaluate/locomo_agent.fit_agent_ranker``); docs/agents.md gives the
held-out figures.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engram.recall.fusion import minmax
from engram.recall.linear import LinearRanker
from engram.turns import spoken_text
from engram.types import Hit

if TYPE_CHECKING:
    from engram.agents.windows import WindowParts

FEATURES = (
    "score",
    "score_rel",
    "vector",
    "window",
    "previous",
    "rank_keyword",
    "speaker_named",
    "speaker_other",
    "log_length",
    "question",
    "session",
)


class Scorer(Protocol):
    def score(self, x: np.ndarray) -> np.ndarray: ...


def _session_shares(head: list[int], hits: Sequence[Hit], scores: list[float]) -> dict[Any, float]:
    """Each session's summed window score over ``head``, min-max normalised over sessions."""
    sums: defaultdict[Any, float] = defaultdict(float)
    for i in head:
        sums[hits[i].metadata.get("session")] += max(scores[i], 0.0)
    return minmax(list(sums.items()))


def _keyword_ranks(hits: Sequence[Hit]) -> dict[int, int]:
    """Each hit's rank by its own BM25 among ``hits`` (1 = best; equal scores, equal ranks)."""
    keyword = {i: float(h.scores["keyword"]) for i, h in enumerate(hits) if "keyword" in h.scores}
    higher = sorted(-s for s in keyword.values())
    return {i: bisect_left(higher, -s) + 1 for i, s in keyword.items()}


def turn_features(head: list[int], hits: Sequence[Hit], parts: WindowParts) -> np.ndarray:
    """The ``FEATURES`` rows of ``hits[i]`` for ``i`` in ``head`` (best window score first)."""
    scores = parts.scores
    ranks = _keyword_ranks(hits)
    top = scores[head[0]]
    shares = _session_shares(head, hits, scores)
    position = {i: p for p, i in parts.at.items()}
    rows = []
    for i in head:
        hit = hits[i]
        speaker = str(hit.metadata.get("speaker") or "")
        text = spoken_text(hit.text, speaker)
        before = None
        if i in position:
            session, turn = position[i]
            before = parts.at.get((session, turn - 1))
        rank = ranks.get(i, 0)
        rows.append(
            [
                scores[i],
                scores[i] - top,
                parts.vector.get(i, 0.0),
                parts.window.get(i, 0.0),
                parts.base.get(before, 0.0) if before is not None else 0.0,
                1.0 / rank if rank else 0.0,
                float(parts.speaker is not None and speaker == parts.speaker),
                float(parts.speaker is not None and bool(speaker) and speaker != parts.speaker),
                math.log(1 + len(text)),
                float("?" in text),
                shares[hit.metadata.get("session")],
            ]
        )
    return np.asarray(rows, dtype=np.float64)


def rank_turns(
    hits: Sequence[Hit], order: list[int], parts: WindowParts, ranker: Scorer, ranked: int
) -> list[Hit]:
    """``hits`` in ``order`` (by window score) with the first ``ranked`` re-ordered by
    ``ranker``: their ``score`` becomes the ranker's (``scores["ranker"]``), above the rest."""
    head, tail = order[:ranked], order[ranked:]
    if not head:
        return []
    values = ranker.score(turn_features(head, hits, parts)).tolist()
    for i, v in zip(head, values, strict=True):
        hits[i].scores["ranker"] = v
        hits[i].score = v
    floor = min(values)
    for n, i in enumerate(tail):
        hits[i].score = floor - 1.0 - n
    best = sorted(head, key=lambda i: (-hits[i].score, -hits[i].created_at, hits[i].id))
    return [hits[i] for i in best + tail]


# ``fit_agent_ranker(Memory(store), load_locomo(path), c=0.01)`` on the five conversations of
# locomo_dev5.json (c chosen by 2-fold over conversations). Per feature: mean, scale, weight.
_FITTED = {
    "score": (0.455394, 0.181817, 0.26618),
    "score_rel": (-0.730301, 0.222496, 0.360256),
    "vector": (0.352947, 0.225763, 0.138976),
    "window": (0.304913, 0.230275, 0.321119),
    "previous": (0.113195, 0.189838, 0.198694),
    "rank_keyword": (0.049639, 0.121675, 0.20645),
    "speaker_named": (0.810907, 0.391583, 0.145172),
    "speaker_other": (0.082913, 0.275751, -0.37032),
    "log_length": (4.695175, 0.663395, 0.598076),
    "question": (0.304034, 0.459997, -0.163163),
    "session": (0.452625, 0.308166, 0.208024),
}
DEFAULT_TURN_RANKER = LinearRanker.from_table(FEATURES, _FITTED, intercept=-5.806821)
