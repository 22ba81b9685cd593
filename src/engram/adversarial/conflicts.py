"""Conflict detection between recalled passages: two sentences from different writers about
the same subject (most of their content words shared) that state different facts (numbers,
or names in capitals, that the other lacks)."""

from __future__ import annotations

import re
from collections.abc import Callable

import Stemmer

from engram.lexicon import CARDINALS, FREQUENCIES, MAGNITUDES, TIMES
from engram.types import Hit

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_WRAP = re.compile(r"(?<!\n)\n(?!\n)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{2,}(?:\s+[A-Z][a-z]{2,})*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP = _words(
    "the a an and or of to in on for at by with from as is are was were be been it its this "
    "that these those than then there their they them not no only per each every any all about "
    "into after before when which who what how many much most more less also can may must "
    "should will would your you our has have had do does did just over under up down out"
)


_STEM = Stemmer.Stemmer("english")


def _subject(sentence: str) -> set[str]:
    """The sentence's content words, stemmed ("keepers" and "keeper" are one subject)."""
    words = [w.lower() for w in _WORD.findall(sentence)]
    return set(_STEM.stemWords([w for w in words if w not in STOP and len(w) > 2]))


NUMBER_WORDS = _words(" ".join([*CARDINALS, *MAGNITUDES, *TIMES, *FREQUENCIES]))


def _facts(sentence: str) -> set[str]:
    numbers = {n.replace(",", "") for n in _NUMBER.findall(sentence)}
    numbers |= {w.lower() for w in _WORD.findall(sentence) if w.lower() in NUMBER_WORDS}
    names = {m.group(0) for m in _NAME.finditer(sentence) if m.start() > 0}
    return numbers | names


def _is_heading(sentence: str) -> bool:
    words = _WORD.findall(sentence)
    capitals = sum(w[0].isupper() for w in words if w.lower() not in STOP)
    return sentence.startswith("#") or (len(words) > 1 and capitals >= 0.6 * len(words))


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (line wraps joined; headings and fragments left out)."""
    parts = (s.strip() for s in _SENTENCE.split(_WRAP.sub(" ", text)))
    return [s for s in parts if len(s) > 12 and not _is_heading(s)]


def _shared(a: str, b: str) -> int:
    return len(_subject(a) & _subject(b))


def disagree(a: str, b: str, overlap: float = 0.4, shared: int = 3) -> bool:
    """Whether sentences ``a`` and ``b`` share a subject (``shared`` content words and at
    least ``overlap`` of the shorter one's) but state different facts."""
    sa, sb = _subject(a), _subject(b)
    common = len(sa & sb)
    if common < shared or common / min(len(sa), len(sb)) < overlap:
        return False
    fa, fb = _facts(a), _facts(b)
    return bool(fa - fb) and bool(fb - fa) and bool(fa) and bool(fb)


def find_conflicts(
    hits: list[Hit], writer: Callable[[Hit], str], *, overlap: float = 0.4
) -> list[tuple[Hit, str, Hit, str]]:
    """``(hit_a, claim_a, hit_b, claim_b)`` for each pair of hits by different writers with
    a pair of disagreeing sentences (per two hits, the pair sharing the most words)."""
    split = [(h, writer(h), sentences(h.text)) for h in hits]
    out = []
    for i, (ha, wa, sa) in enumerate(split):
        for hb, wb, sb in split[i + 1 :]:
            if wa == wb:
                continue
            pairs = [(x, y) for x in sa for y in sb if disagree(x, y, overlap)]
            pair = max(pairs, key=lambda p: _shared(*p), default=None)
            if pair:
                out.append((ha, pair[0], hb, pair[1]))
    return out
