"""Candidate answer spans: the short phrases of an evidence sentence that could answer a question.

Every candidate is a verbatim substring of its sentence, so an answer picked from them is
grounded by construction. Spans made only of the question's own words, or that begin or end
with a function word, are not candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engram.answer.evidence import Sentence
from engram.index.analyzer import STOPWORDS, analyze
from engram.lexicon import (
    CARDINALS,
    FRACTIONS,
    MAGNITUDES,
    MONTH_NAMES,
    ORDINALS,
    SEASONS,
    TIMES,
)

_WORD = re.compile(r"\S+")
_EDGE = ".,;:!?\"'“”‘’()[]{}<>*_`"
_DIGIT = re.compile(r"\d")
_NUMBER_WORDS = frozenset([*CARDINALS, *MAGNITUDES, *FRACTIONS, *ORDINALS, *TIMES])
_MONTHS = frozenset([*MONTH_NAMES, *SEASONS, "century"])
_WANTS_NUMBER = re.compile(
    r"\bhow (?:many|much|long|old|far|often|tall|big|high|large|fast|deep|wide|heavy|hot|"
    r"cold|warm|soon|late|early)\b|\bwhat (?:percentage|percent|proportion|share|number|amount|"
    r"temperature|rate|age|size|fee|cost|price|speed|distance|height|length|weight)\b|"
    r"\bby how\b|\bwithin how\b",
    re.IGNORECASE,
)
_WANTS_TIME = re.compile(
    r"^\s*(?:in |by |since |until |from )?(?:when|what year|which year|what date|what decade|"
    r"what century|what month|what day|in what year|in which year)\b",
    re.IGNORECASE,
)
_WANTS_EXPLANATION = re.compile(
    r"^\s*(?:why\b|how (?:do|does|did|is|was|are|were|can|could|should|would|has|have)\b|"
    r"explain\b|describe\b|what (?:happened|causes?|caused)\b)",
    re.IGNORECASE,
)
_WANTS_NAME = re.compile(r"^\s*(?:who|whom|whose)\b|\bwho (?:is|was|were|are)\b", re.IGNORECASE)


@dataclass
class Candidate:
    """A span of an evidence sentence, with the features the reader scores."""

    text: str
    sentence: Sentence
    start: int  # where the span starts and ends in the sentence's text
    end: int
    words: int
    question_share: float  # share of its terms that the question already has
    type_match: bool  # it has the kind of content the question asks for (number, time, name)
    distance: int  # words between it and the nearest question word in its sentence (capped)


MAX_DISTANCE = 5  # a span farther than this from every question word counts as this far


@dataclass
class _Word:
    text: str  # stripped of edge punctuation
    start: int
    end: int
    asked: bool = False  # one of the question's terms


def _words(sentence: str, asked: set[str], language: str) -> list[_Word]:
    out = []
    for m in _WORD.finditer(sentence):
        raw = m.group(0)
        left = len(raw) - len(raw.lstrip(_EDGE))
        right = len(raw.rstrip(_EDGE))
        if right > left:
            text = raw[left:right]
            hit = bool(set(analyze(text, language)) & asked)
            out.append(_Word(text, m.start() + left, m.start() + right, hit))
    return out


def _distance(words: list[_Word], i: int, j: int) -> int:
    """Words between the span ``words[i..j]`` and the nearest question word outside it."""
    gaps = [i - k for k in range(i) if words[k].asked]
    gaps += [k - j for k in range(j + 1, len(words)) if words[k].asked]
    return min([*gaps, MAX_DISTANCE])


def answer_type(question: str) -> str:
    """What the question asks for: ``explanation`` (why, how does...), ``time``, ``number``,
    ``name`` or ``any``."""
    if _WANTS_EXPLANATION.search(question):
        return "explanation"
    if _WANTS_TIME.search(question):
        return "time"
    if _WANTS_NUMBER.search(question):
        return "number"
    if _WANTS_NAME.search(question):
        return "name"
    return "any"


def _has_number(words: list[_Word]) -> bool:
    return any(_DIGIT.search(w.text) or w.text.lower() in _NUMBER_WORDS for w in words)


def _matches(kind: str, words: list[_Word]) -> bool:
    if kind == "number":
        return _has_number(words)
    if kind == "time":
        return _has_number(words) or any(w.text.lower() in _MONTHS for w in words)
    if kind == "name":
        return all(w.text[:1].isupper() or w.text.lower() in STOPWORDS for w in words)
    return True


def candidate_spans(
    question: str, sentence: Sentence, *, max_words: int = 6, language: str = "english"
) -> list[Candidate]:
    """Every span of 1 to ``max_words`` words of ``sentence`` that could answer ``question``."""
    asked = set(analyze(question, language))
    words = _words(sentence.text, asked, language)
    kind = answer_type(question)
    out: list[Candidate] = []
    for i, first in enumerate(words):
        if first.text.lower() in STOPWORDS:
            continue
        for j in range(i, min(i + max_words, len(words))):
            last = words[j]
            if last.text.lower() in STOPWORDS:
                continue
            text = sentence.text[first.start : last.end]
            terms = analyze(text, language)
            novel = [t for t in terms if t not in asked]
            if not novel:
                continue
            out.append(
                Candidate(
                    text=text,
                    sentence=sentence,
                    start=first.start,
                    end=last.end,
                    words=j - i + 1,
                    question_share=1 - len(novel) / len(terms),
                    type_match=_matches(kind, words[i : j + 1]),
                    distance=_distance(words, i, j),
                )
            )
    return out
