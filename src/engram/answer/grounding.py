"""Grounding checks on generated answers: numbers and new terms in the passages; no-answers."""

from __future__ import annotations

import re

from engram.index.analyzer import analyze
from engram.prompt.builder import NO_ANSWER, Source

NUMBER_LIST = r"\d+(?:\s*[-–]\s*\d+)?(?:\s*[,;]\s*\d+(?:\s*[-–]\s*\d+)?)*"
CITATION = re.compile(rf"\[\s*{NUMBER_LIST}\s*\]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_PREFIX = re.compile(r"^\s*(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[:\-]\s*", re.IGNORECASE)


def strip_preamble(answer: str) -> str:
    """Drop a leading "The answer is:" that small models like to add."""
    return _PREFIX.sub("", answer, count=1)


def is_grounded(answer: str, question: str, sources: list[Source], min_share: float = 0.5) -> bool:
    """Whether the passages back what the answer adds to the question.

    Every number in the answer must occur in some passage, and at least ``min_share`` of the
    answer's terms that are not already in the question must occur in the passages. An answer
    that adds nothing to the question is not judged (True).
    """
    text = CITATION.sub(" ", answer)
    evidence = " ".join(f"{s.hit.title} {s.text or s.hit.text}" for s in sources)
    known_numbers = set(_NUMBER.findall(evidence))
    if any(n not in known_numbers for n in _NUMBER.findall(text)):
        return False
    novel = set(analyze(text)) - set(analyze(question)) - {"answer"}
    if not novel:
        return True
    return len(novel & set(analyze(evidence))) / len(novel) >= min_share


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return " ".join(text.split())


_NO_ANSWER_PATTERNS = re.compile(
    r"\bi (?:do not|don't|dont|cannot|can't) (?:know|say|tell)\b"
    r"|\bnot (?:in|found in|present in|available in|mentioned in|contained in) "
    r"(?:the |my |your )?(?:memory|memories|passages?|context|sources?)\b"
    r"|\bno answer\b"
    r"|\b(?:cannot|can't|can not|unable to) (?:answer|determine|tell|find)\b"
    r"|\b(?:passages?|memory|memories|context|information|text|sources?|documents?|data)\b"
    r"[^.]{0,30}?\b(?:does|do|did)(?: not|n't) (?:contain|include|mention|say|provide)\b"
    r"|\bno (?:relevant )?(?:information|passage|memory|memories) (?:about|on|regarding|for)\b"
)


def is_no_answer(answer: str) -> bool:
    """True when ``answer`` is the no-answer sentence or an obvious variant ("I don't know",
    "not in memory", "no answer", "cannot answer from", "the passages do not contain").

    An empty reply counts as no answer; a reply with a citation marker does not.
    """
    text = _normalise(answer)
    if not text:
        return True
    if _normalise(NO_ANSWER) in text or text.rstrip(".!") == "i don't know":
        return True
    if CITATION.search(text):  # a cited reply is an answer, however hedged
        return False
    return bool(_NO_ANSWER_PATTERNS.search(text))
