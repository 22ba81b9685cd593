"""LoCoMo's extra views: the speaker bonus, the session share and context-window vectors."""

from __future__ import annotations

from collections import Counter

import pytest
from test_locomo import locomo_file  # noqa: F401  (the tiny conversation fixture)

from engram.evaluate.locomo import (
    Settings,
    evaluate_locomo,
    recall_turns,
    session_share,
    speaker_bonus,
)
from engram.types import Hit


def _hit(dia: str, speaker: str) -> Hit:
    return Hit(id=0, score=0.0, text="", doc_id=dia, metadata={"dia_id": dia, "speaker": speaker})


def test_speaker_bonus_only_for_the_one_named_speaker():
    hits = [_hit("D1:1", "Ana"), _hit("D1:2", "Ben")]
    score = Counter({"D1:1": 0.5, "D1:2": 0.6})
    speaker_bonus(score, "What did Ana learn?", hits, 0.2)
    assert score == {"D1:1": 0.7, "D1:2": 0.6}
    both = Counter({"D1:1": 0.5, "D1:2": 0.6})
    speaker_bonus(both, "What do Ana and Ben have?", hits, 0.2)
    assert both == {"D1:1": 0.5, "D1:2": 0.6}
    part = Counter({"D1:1": 0.5})
    speaker_bonus(part, "Is Banana bread good?", [_hit("D1:1", "Ana")], 0.2)  # a word, not "ana"
    assert part == {"D1:1": 0.5}


def test_session_share_lifts_turns_of_the_strongest_session():
    score = Counter({"D1:1": 0.4, "D1:2": 0.4, "D2:1": 0.5})
    session_share(score, 0.5)
    assert score["D1:1"] == pytest.approx(0.9) and score["D2:1"] == pytest.approx(0.8125)
    assert score["D1:1"] > score["D2:1"]


def test_settings_change_the_ranking(locomo_file, make_memory):  # noqa: F811
    mem = make_memory()
    evaluate_locomo(locomo_file, memory=mem)  # ingests
    question = "What pets does Ben have?"
    ns = "locomo-conv-t"
    off = Settings(speaker=0.0, context_vector=0.0, ranker="none")  # the blend's own scores
    base = dict(recall_turns(mem, ns, question, k=14, settings=off))
    speak = Settings(context_vector=0.0, ranker="none")
    spoken = dict(recall_turns(mem, ns, question, k=14, settings=speak))
    ben = [d for d in base if d.startswith("D2:") and int(d[3:]) % 2 == 1]  # Ben's turns
    assert ben and all(spoken[d] > base[d] for d in ben if d in spoken)
    with_cv = dict(
        recall_turns(mem, ns, question, k=14, settings=Settings(speaker=0.0, ranker="none"))
    )
    assert with_cv != base
    result = evaluate_locomo(locomo_file, memory=mem, settings=Settings(session=0.2))
    assert result["questions"] == 4 and 0.5 <= result["recall@10"] <= 1.0
