"""A learned ranker for LoCoMo turns (issue 18): logistic regression over per-turn features.

``recall_turns`` ranks a question's turns by a fixed blend of its views (see ``locomo``). The
ranker re-orders the blend's best ``Settings.ranker_pool`` turns by a linear score over
features of each turn: the blend's score, each view's normalised score and reciprocal rank,
its neighbours' scores, whether the one speaker the question names said it (or the other one
did), whether it lies in the question's time range, its session's share of the scores, its
length, whether it shares an image and whether it asks a question. The weights are fitted
(``fit_ranker``: L2-regularised logistic regression, Newton steps, numpy only) on evidence
labels; ``DEFAULT_RANKER`` holds the weights fitted on the five conversations of
``locomo_dev5.json`` (``fit_turn_ranker``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engram.recall.linear import LinearRanker, fit_logistic
from engram.timeparse import TimeRange

if TYPE_CHECKING:
    from engram.evaluate.locomo import Conversation, Settings
    from engram.memory import Memory

VIEWS = ("turn_keyword", "context_keyword", "sentence_vector", "context_vector")
FEATURES = (
    "score",
    "score_rel",
    *VIEWS,
    *(f"rank_{v}" for v in VIEWS),
    "prev_score",
    "next_score",
    "speaker_named",
    "speaker_other",
    "time_in",
    "time_after",
    "session",
    "log_length",
    "caption",
    "question",
)


@dataclass(frozen=True)
class TurnRanker(LinearRanker):
    """A linear score over ``FEATURES``, standardised by ``mean`` and ``scale``."""

    def __post_init__(self) -> None:
        if not len(self.mean) == len(self.scale) == len(self.coef) == len(FEATURES):
            raise ValueError(f"a TurnRanker needs {len(FEATURES)} values per field")


@dataclass
class Candidates:
    """What ``recall_turns`` knows about a question's turns before the ranker."""

    ranked: list[tuple[str, float]]  # the blend's ranking, time bonus included, best first
    views: dict[str, dict[str, float]]  # each view's raw score per turn (``VIEWS``)
    normalised: dict[str, dict[str, float]]  # the same, min-max normalised over candidates
    blended: dict[str, float]  # the views' blend with the speaker bonus, before neighbours
    texts: dict[str, str]  # turn texts
    speakers: dict[str, str]
    times: dict[str, float]
    named: list[str]  # the speakers the question names
    found: TimeRange | None  # the time range the question names
    after_s: float  # seconds after the range that still count as "time_after"


def _reciprocal_ranks(scores: dict[str, float]) -> dict[str, float]:
    order = sorted(scores.items(), key=lambda x: -x[1])
    return {d: 1.0 / (i + 1) for i, (d, _) in enumerate(order)}


def _neighbour(dia: str, step: int) -> str:
    session, number = dia[1:].split(":")
    return f"D{session}:{int(number) + step}"


def turn_features(c: Candidates, pool: int) -> tuple[list[str], np.ndarray]:
    """The ids of the best ``pool`` turns of ``c.ranked`` and their ``FEATURES`` rows."""
    ids = [d for d, _ in c.ranked[:pool]]
    if not ids:
        return [], np.zeros((0, len(FEATURES)))
    top = c.ranked[0][1] or 1.0
    ranks = {v: _reciprocal_ranks(c.views.get(v, {})) for v in VIEWS}
    sessions: dict[str, float] = {}
    for dia, s in c.blended.items():
        sessions[dia.split(":")[0]] = sessions.get(dia.split(":")[0], 0.0) + s
    best_session = max(sessions.values(), default=0.0) or 1.0
    base = dict(c.ranked)
    rows = []
    for dia in ids:
        text, t = c.texts[dia], c.times[dia]
        inside = after = 0.0
        if c.found is not None:
            end = c.found.end if c.found.end is not None else math.inf
            inside = float(c.found.contains(t))
            after = float(end <= t < end + c.after_s)
        rows.append(
            [
                base[dia],
                base[dia] / top,
                *(c.normalised.get(v, {}).get(dia, 0.0) for v in VIEWS),
                *(ranks[v].get(dia, 0.0) for v in VIEWS),
                c.blended.get(_neighbour(dia, -1), 0.0),
                c.blended.get(_neighbour(dia, 1), 0.0),
                float(len(c.named) == 1 and c.speakers.get(dia) == c.named[0]),
                float(bool(c.named) and c.speakers.get(dia) not in c.named),
                inside,
                after,
                sessions.get(dia.split(":")[0], 0.0) / best_session,
                math.log(max(len(text), 1)),
                float("[shares " in text),
                float(text.rstrip().endswith("?")),
            ]
        )
    return ids, np.asarray(rows, dtype=np.float64)


def rerank(c: Candidates, ranker: TurnRanker, pool: int) -> list[tuple[str, float]]:
    """``c.ranked`` with its best ``pool`` turns re-ordered by ``ranker`` (scored above the
    rest, which keep their order)."""
    ids, x = turn_features(c, pool)
    if not ids:
        return list(c.ranked)
    scores = ranker.score(x)
    head = sorted(zip(ids, scores.tolist(), strict=True), key=lambda r: (-r[1], r[0]))
    floor = min(s for _, s in head)
    tail = [(d, floor - 1.0 - i) for i, (d, _) in enumerate(c.ranked[pool:])]
    return head + tail


def fit_ranker(
    rows: list[tuple[np.ndarray, np.ndarray]], c: float = 0.01, steps: int = 50
) -> TurnRanker:
    """``fit_logistic`` over each question's ``(features, labels)`` (1: an evidence turn)."""
    return fit_logistic(rows, c, steps, cls=TurnRanker)


def fit_turn_ranker(
    convs: list[Conversation], memory: Memory, settings: Settings | None = None, c: float = 0.01
) -> TurnRanker:
    """A ``TurnRanker`` fitted on the evidence of ``convs``' scored questions (already
    ingested in ``memory``): each question's best ``settings.ranker_pool`` turns of the blend,
    labelled 1 when they are evidence."""
    from engram.evaluate.locomo import Settings, _scored_questions, turn_candidates  # its caller

    settings = settings or Settings()
    todo, _ = _scored_questions(convs)
    rows = []
    for conv, q in todo:
        found = turn_candidates(memory, conv.namespace, q.question, settings)
        ids, x = turn_features(found, settings.ranker_pool)
        if ids:
            rows.append((x, np.asarray([float(d in q.evidence) for d in ids])))
    return fit_ranker(rows, c)


# Fitted on the five conversations of locomo_dev5.json with c = 0.01 (the best of 0.003, 0.01,
# 0.03, 0.1 left one conversation out) and the default Settings:
# ``fit_turn_ranker(load_locomo(path), Memory(store), c=0.01)``. Per feature: mean, scale, weight.
_FITTED = {
    "score": (0.302673, 0.192718, 0.17002),
    "score_rel": (0.268541, 0.173353, 0.510439),
    "turn_keyword": (0.122851, 0.212915, -0.051467),
    "context_keyword": (0.158778, 0.247228, 0.253671),
    "sentence_vector": (0.19603, 0.227272, 0.003643),
    "context_vector": (0.182829, 0.251683, 0.070754),
    "rank_turn_keyword": (0.041176, 0.119414, 0.132973),
    "rank_context_keyword": (0.042403, 0.119475, 0.015933),
    "rank_sentence_vector": (0.048104, 0.11819, 0.040892),
    "rank_context_vector": (0.041954, 0.118797, 0.023159),
    "prev_score": (0.133425, 0.218359, 0.209852),
    "next_score": (0.127195, 0.208794, 0.004361),
    "speaker_named": (0.734513, 0.441592, 0.102798),
    "speaker_other": (0.157592, 0.364358, -0.516357),
    "time_in": (0.045658, 0.208742, 0.089248),
    "time_after": (0.009908, 0.099044, 0.024214),
    "session": (0.471977, 0.288529, 0.134399),
    "log_length": (4.92351, 0.565222, 0.377346),
    "caption": (0.256289, 0.436584, -0.049429),
    "question": (0.261618, 0.439516, -0.310337),
}
DEFAULT_RANKER = TurnRanker.from_table(FEATURES, _FITTED, intercept=-5.782566)
