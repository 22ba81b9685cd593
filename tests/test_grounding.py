"""Answers the passages do not back are turned into "no answer" (no model needed here)."""

from __future__ import annotations

from engram.answer.grounding import is_grounded, strip_preamble
from engram.prompt import Source
from engram.types import Hit


def source(text: str, n: int = 1) -> Source:
    return Source(number=n, hit=Hit(id=n, text=text, score=1.0), cluster=0, text=text)


PASSAGES = [
    source("The light was automated in 1974 and is monitored remotely."),
    source("Cool the burn under running water for 20 minutes.", 2),
]


def test_numbers_must_come_from_the_passages():
    q = "When was the lighthouse automated?"
    assert is_grounded("It was automated in 1974 [1].", q, PASSAGES)
    assert not is_grounded("It was automated in 1982.", q, PASSAGES)
    assert not is_grounded("6 months", "How long should a burn be cooled?", PASSAGES)


def test_new_terms_must_mostly_come_from_the_passages():
    q = "How should a burn be cooled?"
    assert is_grounded("Under running water for 20 minutes.", q, PASSAGES)
    assert not is_grounded("Apply butter and toothpaste generously.", q, PASSAGES)
    assert is_grounded("A burn should be cooled.", q, PASSAGES)  # adds nothing: not judged


def test_preamble_is_stripped():
    assert strip_preamble("The answer is: 20 minutes.") == "20 minutes."
    assert strip_preamble("Answer: yes") == "yes"
    assert strip_preamble("The answer lies in the soil.") == "The answer lies in the soil."
