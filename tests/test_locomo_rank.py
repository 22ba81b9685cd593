"""LoCoMo's learned turn ranker (``engram.evaluate.locomo_rank``) on a real small conversation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_locomo import locomo_file, run_cli  # noqa: F401  (the tiny conversation fixture)

from engram.errors import EngramError
from engram.evaluate.locomo import (
    Settings,
    evaluate_locomo,
    load_locomo,
    recall_turns,
    turn_candidates,
)
from engram.evaluate.locomo_rank import (
    DEFAULT_RANKER,
    FEATURES,
    Candidates,
    TurnRanker,
    fit_ranker,
    fit_turn_ranker,
    rerank,
    turn_features,
)
from engram.timeparse import TimeRange

NS = "locomo-conv-t"


def _only(feature: str, weight: float) -> TurnRanker:
    """A ranker that scores one feature alone."""
    coef = tuple(weight if f == feature else 0.0 for f in FEATURES)
    return TurnRanker((0.0,) * len(FEATURES), (1.0,) * len(FEATURES), coef)


def _candidates() -> Candidates:
    return Candidates(
        ranked=[("D1:2", 1.0), ("D1:1", 0.5), ("D2:1", 0.25)],
        views={"turn_keyword": {"D1:2": 3.0, "D1:1": 5.0}},
        normalised={"turn_keyword": {"D1:2": 0.0, "D1:1": 1.0}},
        blended={"D1:1": 0.4, "D1:2": 0.9, "D2:1": 0.2},
        texts={"D1:1": "Ana: Where to?", "D1:2": "Ben: Lisbon [shares a photo]", "D2:1": "Ana: Hi"},
        speakers={"D1:1": "Ana", "D1:2": "Ben", "D2:1": "Ana"},
        times={"D1:1": 100.0, "D1:2": 101.0, "D2:1": 900.0},
        named=["Ben"],
        found=TimeRange(50.0, 150.0),
        after_s=1000.0,
    )


def test_turn_features_read_each_turn():
    ids, x = turn_features(_candidates(), pool=2)
    assert ids == ["D1:2", "D1:1"] and x.shape == (2, len(FEATURES))
    row = dict(zip(FEATURES, x[0], strict=True))
    assert row["score"] == 1.0 and row["score_rel"] == 1.0 and row["rank_turn_keyword"] == 0.5
    assert row["prev_score"] == 0.4 and row["next_score"] == 0.0  # D1:1 before it, no D1:3
    assert row["speaker_named"] == 1.0 and row["speaker_other"] == 0.0
    assert row["time_in"] == 1.0 and row["time_after"] == 0.0
    assert row["session"] == 1.0 and row["caption"] == 1.0 and row["question"] == 0.0
    assert row["log_length"] == pytest.approx(math.log(len("Ben: Lisbon [shares a photo]")))
    other = dict(zip(FEATURES, x[1], strict=True))
    assert other["speaker_other"] == 1.0 and other["question"] == 1.0
    assert other["session"] == pytest.approx(1.3 / 1.3) and other["score_rel"] == 0.5


def test_rerank_reorders_the_pool_and_keeps_the_rest_below():
    found = _candidates()
    asked = rerank(found, _only("question", 1.0), pool=2)  # question turns first
    assert [d for d, _ in asked] == ["D1:1", "D1:2", "D2:1"]
    assert asked[1][1] > asked[2][1]  # the turn outside the pool stays below it


def test_fit_ranker_learns_which_feature_marks_evidence():
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):
        x = rng.normal(size=(20, len(FEATURES)))
        y = (x[:, FEATURES.index("log_length")] > 1.0).astype(float)
        rows.append((x, y))
    ranker = fit_ranker(rows, c=1.0)
    weights = dict(zip(FEATURES, ranker.coef, strict=True))
    assert max(weights, key=lambda f: abs(weights[f])) == "log_length"
    assert weights["log_length"] > 0
    with pytest.raises(ValueError, match="both relevant and other"):
        fit_ranker([(rows[0][0], np.zeros(20))])


def test_bad_settings_and_rankers_are_refused():
    with pytest.raises(EngramError, match="ranker must be learned or none"):
        Settings(ranker="best")
    with pytest.raises(EngramError, match="ranker_pool"):
        Settings(ranker_pool=0)
    with pytest.raises(ValueError, match="values per field"):
        TurnRanker((0.0,), (1.0,), (1.0,))
    assert len(DEFAULT_RANKER.coef) == len(FEATURES)


def test_the_ranker_changes_the_ranking_in_a_real_conversation(locomo_file, make_memory):  # noqa: F811
    mem = make_memory()
    evaluate_locomo(locomo_file, memory=mem)  # ingests
    question = "How was the trip to Lisbon?"
    blend = recall_turns(mem, NS, question, k=5, settings=Settings(ranker="none"))
    assert any(s.endswith("?") for s in _texts(mem, question, blend))  # "How was the trip?"
    no_questions = recall_turns(mem, NS, question, k=5, ranker=_only("question", -1.0))
    assert no_questions != blend
    assert not any(t.endswith("?") for t in _texts(mem, question, no_questions))
    learned = recall_turns(mem, NS, question, k=5)
    assert learned[0][0] == "D2:3"  # "I got back from Lisbon yesterday, ..."
    assert {d for d, _ in learned} <= {d for d, _ in turn_candidates(mem, NS, question).ranked}
    fitted = fit_turn_ranker(load_locomo(locomo_file), mem, c=1.0)
    assert fitted != DEFAULT_RANKER and len(fitted.coef) == len(FEATURES)


def _texts(mem, question, ranked):
    found = turn_candidates(mem, NS, question)
    return [found.texts[d].rstrip() for d, _ in ranked]


def test_cli_runs_the_ranker_on_and_off(locomo_file, tmp_path, capsys):  # noqa: F811
    argv = ["--store", str(tmp_path / "l.db"), "eval", "locomo", str(locomo_file), "--json"]
    learned = run_cli(argv, capsys)
    off = run_cli([*argv, "--recall", "ranker=none", "--recall", "ranker_pool=5"], capsys)
    assert learned["questions"] == off["questions"] == 4
    with pytest.raises(EngramError, match="ranker must be learned or none"):
        run_cli([*argv, "--recall", "ranker=bm25"], capsys)
