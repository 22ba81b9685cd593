"""Conversation recall by turn windows (``AgentMemory.recall``).

A reply seldom repeats the words of the question it answers; the turns around it do ("Where did
you go in May?" / "Lisbon, with my sister"). So each candidate turn of one hybrid search is
scored by its own keyword and vector scores, by the keyword scores of its window (the two turns
before it and the one after, in its session), and it gains a share of the score of the turn
before it (and half that of the turn after). When the query names exactly one of the
candidates' speakers as a word ("What did Ben say about Lisbon?"), that speaker's turns gain a
bonus. Memories that are not numbered turns (reflections, notes) keep their own scores. Only
the candidates' scores and metadata are read: nothing is stored.

The weights were chosen on the LoCoMo conversations of ``../shared/data`` by a 2-fold split
over conversations (docs/agents.md): evidence recall@10 of the relevance-only ranking 0.683 ->
0.745 held out; through ``AgentMemory.recall`` with its default weights 0.679 -> 0.720; the learned
turn ranker (``turn_rank``) over the best 100 then takes it to 0.740 (0.723 without it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engram.agents.turn_rank import DEFAULT_TURN_RANKER, Scorer, rank_turns
from engram.recall.fusion import minmax
from engram.turns import speakers_named
from engram.types import Hit

Position = tuple[Any, int]  # (session, running turn index)
WINDOW = (-2, -1, 0, 1)  # the turns whose keyword scores make a turn's window score


@dataclass(frozen=True)
class WindowWeights:
    """Weights of a turn's recall score (each leg min-max normalised over its candidates)."""

    keyword: float = 0.5  # the turn's own BM25
    vector: float = 0.4  # the turn's own cosine
    window: float = 0.2  # BM25 summed over its window
    previous: float = 0.1  # share of the previous turn's score (half of it from the next turn)
    speaker: float = 0.2  # bonus of the turns of the one speaker the query names
    pool: int = 200  # candidates read from each leg
    ranker: Scorer | None = DEFAULT_TURN_RANKER  # re-orders the best by window score
    ranked: int = 100  # how many the ranker re-orders

    def __post_init__(self) -> None:
        parts = (self.keyword, self.vector, self.window, self.previous, self.speaker)
        if min(parts) < 0 or self.keyword + self.vector + self.window <= 0:
            raise ValueError(f"window weights must be >= 0 and not all 0, got {parts}")
        if self.ranked < 0:
            raise ValueError(f"the ranked count must be >= 0, got {self.ranked}")
        if self.pool < 1:
            raise ValueError(f"the window pool must be at least 1, got {self.pool}")


def _position(hit: Hit) -> Position | None:
    turn = hit.metadata.get("turn")
    if not isinstance(turn, int) or isinstance(turn, bool):
        return None
    return hit.metadata.get("session"), turn


def _leg(hits: Sequence[Hit], name: str, pool: int) -> dict[int, float]:
    """The raw scores of one leg's top ``pool`` among ``hits``, by hit index."""
    return {
        i: float(h.scores[name])
        for i, h in enumerate(hits)
        if name in h.scores and h.scores.get(f"{name}_rank", 0) <= pool
    }


def _in_pool(hit: Hit, pool: int) -> bool:
    return any(0 < hit.scores.get(f"{leg}_rank", 0) <= pool for leg in ("keyword", "vector"))


def named_speaker(query: str, hits: Sequence[Hit]) -> str | None:
    """The one speaker of ``hits`` that ``query`` names as a word, as written, else None
    (case counts: "Ben" is not named by "ben")."""
    named = speakers_named(query, hits)
    return named[0] if len(named) == 1 else None


@dataclass
class WindowParts:
    """The parts of each hit's window score, by the hit's index (see ``window_parts``)."""

    vector: dict[int, float]  # own cosine, normalised
    window: dict[int, float]  # BM25 summed over the window, normalised
    base: dict[int, float]  # their weighted sum, before neighbours and speaker
    at: dict[Position, int]  # the hits that are numbered turns, by position
    speaker: str | None  # the one speaker the query names
    scores: list[float]  # the window scores, in the order of the hits


def window_parts(hits: Sequence[Hit], weights: WindowWeights, query: str = "") -> WindowParts:
    """Each hit's window score (see the module docstring) and its parts."""
    keyword = _leg(hits, "keyword", weights.pool)
    vector = _leg(hits, "vector", weights.pool)
    at = {p: i for i, h in enumerate(hits) if (p := _position(h)) is not None}
    windowed: dict[int, float] = {}
    for (session, turn), i in at.items():
        near = (at.get((session, turn + d)) for d in WINDOW)
        windowed[i] = sum(keyword.get(j, 0.0) for j in near if j is not None)
    for i in keyword.keys() - windowed.keys():  # not a numbered turn: its own score
        windowed[i] = keyword[i]
    own, cosine, window = (minmax(list(leg.items())) for leg in (keyword, vector, windowed))
    base: defaultdict[int, float] = defaultdict(float)
    for leg, weight in ((own, weights.keyword), (cosine, weights.vector), (window, weights.window)):
        for i, s in leg.items():
            base[i] += weight * s
    score = dict(base)
    for (session, turn), i in at.items():
        before, after = at.get((session, turn - 1), -1), at.get((session, turn + 1), -1)
        score[i] = score.get(i, 0.0) + weights.previous * (
            base.get(before, 0.0) + base.get(after, 0.0) / 2
        )
    speaker = named_speaker(query, hits) if weights.speaker else None
    for i, h in enumerate(hits):
        if speaker is not None and h.metadata.get("speaker") == speaker:
            score[i] = score.get(i, 0.0) + weights.speaker
    scores = [score.get(i, 0.0) for i in range(len(hits))]
    return WindowParts(cosine, window, dict(base), at, speaker, scores)


def window_scores(hits: Sequence[Hit], weights: WindowWeights, query: str = "") -> list[float]:
    """Each hit's window score, in the order of ``hits``."""
    return window_parts(hits, weights, query).scores


def window_rank(hits: Sequence[Hit], weights: WindowWeights, query: str = "") -> list[Hit]:
    """``hits`` (one hybrid search's candidates, with their leg scores) scored by turn
    windows, best first; only those in either leg's top ``pool`` are kept. ``score`` becomes
    the window score and ``scores`` gains ``window``. With ``weights.ranker``, the best
    ``weights.ranked`` are then re-ordered by it (``turn_rank``; ``scores["ranker"]``)."""
    out = [h for h in hits if _in_pool(h, weights.pool)]
    parts = window_parts(out, weights, query)
    for hit, s in zip(out, parts.scores, strict=True):
        hit.scores["window"] = s
        hit.score = s
    order = sorted(range(len(out)), key=lambda i: (-out[i].score, -out[i].created_at, out[i].id))
    if weights.ranker is None or not weights.ranked:
        return [out[i] for i in order]
    return rank_turns(out, order, parts, weights.ranker, weights.ranked)
