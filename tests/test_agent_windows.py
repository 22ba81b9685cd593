"""Conversation recall by turn windows (``engram.agents.windows``): a reply is found by the
words of the turns around it, on a real memory and on hand-made hits."""

from __future__ import annotations

import numpy as np
import pytest

from engram.agents import AgentMemory
from engram.agents.turn_rank import FEATURES, turn_features
from engram.agents.windows import (
    WindowWeights,
    named_speaker,
    window_parts,
    window_rank,
    window_scores,
)
from engram.recall.linear import LinearRanker
from engram.types import Hit

T0 = 1_686_000_000.0


def hit(
    i: int, keyword: float | None, vector: float, turn: int | None, session: int = 1, who: str = ""
) -> Hit:
    scores: dict[str, float] = {"vector": vector, "vector_rank": i + 1}
    if keyword is not None:
        scores.update(keyword=keyword, keyword_rank=i + 1)
    meta = {"kind": "turn", "session": session, "speaker": who or f"s{i}"}
    if turn is not None:
        meta["turn"] = turn
    return Hit(
        id=i, doc_id=f"d{i}", text=f"t{i}", score=0.0, scores=scores, metadata=meta, created_at=T0
    )


def test_a_reply_gains_from_the_question_before_it():
    question = hit(0, 9.0, 0.5, turn=10)
    reply = hit(1, None, 0.4, turn=11)  # shares no word with the query
    other = hit(2, None, 0.4, turn=30)  # as close by vector, far from any keyword match
    lone = hit(3, 3.0, 0.1, turn=None)  # a memory that is not a numbered turn
    scores = window_scores([question, reply, other, lone], WindowWeights())
    assert scores[0] > scores[1] > scores[2]
    assert scores[1] - scores[2] > 0.1  # window + a tenth of the question's score
    plain = window_scores([question, reply, other, lone], WindowWeights(window=0, previous=0))
    assert plain[1] == pytest.approx(plain[2])  # without windows the two tie
    assert scores[3] > 0  # scored by its own legs


def test_windows_stay_inside_a_session():
    question = hit(0, 9.0, 0.5, turn=10, session=1)
    next_session = hit(1, None, 0.4, turn=11, session=2)
    other = hit(2, None, 0.4, turn=30, session=2)
    scores = window_scores([question, next_session, other], WindowWeights())
    assert scores[1] == pytest.approx(scores[2])


def test_window_rank_keeps_each_legs_pool_and_records_the_score():
    hits = [hit(i, 5.0 - i, 0.5, turn=i) for i in range(5)]
    hits[4].scores.update(keyword_rank=9, vector_rank=9)
    ranked = window_rank(hits, WindowWeights(pool=4, ranker=None))
    assert {h.doc_id for h in ranked} == {"d0", "d1", "d2", "d3"}  # d4: beyond both pools
    assert all(h.score == h.scores["window"] for h in ranked)
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)


def test_the_one_speaker_a_query_names_gains():
    hits = [hit(0, 2.0, 0.5, 1, who="Ben"), hit(1, 2.0, 0.5, 20, who="Ana")]
    assert named_speaker("What did Ben bake?", hits) == "Ben"
    assert named_speaker("What did ben or Benny bake?", hits) is None  # as written, whole words
    assert named_speaker("Did Ana and Ben bake?", hits) is None  # two: no bonus
    named = window_scores(hits, WindowWeights(), "What did Ben bake?")
    assert named[0] - named[1] == pytest.approx(WindowWeights().speaker)
    assert window_scores(hits, WindowWeights(), "What was baked?") == [pytest.approx(named[1])] * 2


@pytest.mark.parametrize(
    "bad",
    [
        dict(keyword=-1),
        dict(speaker=-0.1),
        dict(keyword=0, vector=0, window=0),
        dict(pool=0),
        dict(ranked=-1),
    ],
)
def test_bad_window_weights_are_refused(bad):
    with pytest.raises(ValueError):
        WindowWeights(**bad)


def _only(feature: str, weight: float = 1.0) -> LinearRanker:
    coef = tuple(weight if f == feature else 0.0 for f in FEATURES)
    return LinearRanker((0.0,) * len(FEATURES), (1.0,) * len(FEATURES), coef)


def test_the_ranker_reorders_the_best_by_window_score_and_keeps_the_rest_below():
    hits = [hit(i, 5.0 - i, 0.5, turn=10 * i) for i in range(4)]
    hits[3].text = "a much longer turn than the others, which the ranker prefers"
    ranked = window_rank(hits, WindowWeights(ranker=_only("log_length"), ranked=3))
    assert [h.doc_id for h in ranked] == ["d0", "d1", "d2", "d3"]  # d3 is not among the 3
    hits = [hit(i, 5.0 - i, 0.5, turn=10 * i) for i in range(4)]
    hits[2].text = "a much longer turn than the others, which the ranker prefers"
    ranked = window_rank(hits, WindowWeights(ranker=_only("log_length"), ranked=3))
    assert [h.doc_id for h in ranked] == ["d2", "d0", "d1", "d3"]
    assert "ranker" in ranked[0].scores and "ranker" not in ranked[3].scores
    assert ranked[3].score < min(h.score for h in ranked[:3])


def test_turn_features_read_speaker_question_and_the_turn_before():
    hits = [
        hit(0, 4.0, 0.9, turn=5, who="Ben"),
        hit(1, None, 0.2, turn=6, who="Ana"),
        hit(2, 1.0, 0.1, turn=None),
    ]
    hits[1].text = "Ana: And where did you go?"
    parts = window_parts(hits, WindowWeights(), "What did Ben say?")
    x = dict(zip(FEATURES, turn_features([0, 1, 2], hits, parts).T, strict=True))
    assert list(x["speaker_named"]) == [1.0, 0.0, 0.0]
    assert list(x["speaker_other"]) == [0.0, 1.0, 1.0]
    assert list(x["question"]) == [0.0, 1.0, 0.0]
    assert x["previous"][1] == pytest.approx(parts.base[0]) and x["previous"][0] == 0.0
    assert x["rank_keyword"][1] == 0.0 and x["rank_keyword"][0] == 1.0
    assert x["score_rel"][0] == 0.0 and max(x["score_rel"]) == 0.0
    assert x["log_length"][1] == pytest.approx(np.log(1 + len("And where did you go?")))


CHAT = [
    ("Ana", "Morning! The coffee machine at work broke again."),
    ("Ben", "Typical. Did anyone call the repair service?"),
    ("Ana", "Where did you go on holiday in May?"),
    ("Ben", "Lisbon, with my sister. We ate custard tarts every morning."),
    ("Ana", "My cousin is planning a trip to Norway next year."),
    ("Ben", "I finally fixed the bike's rear brake."),
    ("Ana", "Holiday shopping always stresses me out."),
    ("Ben", "The new season of the cooking show starts soon."),
    ("Ana", "I love the lights in town during the holiday season."),
    ("Ben", "Our team won the quiz night on Thursday."),
]


def test_agent_recall_finds_a_reply_by_the_question_before_it(make_memory):
    mem = make_memory()
    agent = AgentMemory(mem, "chat", clock=lambda: T0 + 3600)
    ids = agent.remember_session(
        [{"speaker": s, "text": t, "time": T0 + i} for i, (s, t) in enumerate(CHAT)], session=1
    )
    reply = ids[3]
    query = "Where did Ben go on holiday?"

    def place(window: WindowWeights | None) -> int:
        agent.window = window
        ranked = [h.doc_id for h in agent.recall(query, k=10)]
        return ranked.index(reply)

    with_windows, without = place(WindowWeights()), place(None)
    assert with_windows <= 1 < without
