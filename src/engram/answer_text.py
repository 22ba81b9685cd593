"""Post-process a model's answer: validate citations, attribute uncited answers, spot no-answers."""

from __future__ import annotations

import re

from engram.index.analyzer import analyze
from engram.prompt.builder import NO_ANSWER, Source

MAX_RANGE = 20  # "[n-m]" wider than this is read as the two numbers n and m

_NUMBER_LIST = r"\d+(?:\s*[-–]\s*\d+)?(?:\s*[,;]\s*\d+(?:\s*[-–]\s*\d+)?)*"
_MARKER = re.compile(rf"(?P<space>[ \t]*)\[\s*(?P<body>{_NUMBER_LIST})\s*\](?P<trail>[ \t]*)")
_ITEM = re.compile(r"(\d+)(?:\s*[-–]\s*(\d+))?")


def _numbers(body: str) -> list[int]:
    out: list[int] = []
    for m in _ITEM.finditer(body):
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else None
        if last is None:
            out.append(first)
        elif first <= last <= first + MAX_RANGE:
            out.extend(range(first, last + 1))
        else:
            out.extend([first, last])
    return out


def process_citations(answer: str, sources: list[Source]) -> tuple[str, list[Source], list[int]]:
    """Check citation markers (``[1]``, ``[1, 3]``, ``[1][3]``, ``[2-4]``) against ``sources``.

    Returns the answer with unknown numbers removed (a marker left with no known number is
    dropped entirely), the cited sources in order of first citation without repeats, and the
    unknown numbers in order of appearance without repeats.
    """
    by_number = {s.number: s for s in sources}
    cited: dict[int, Source] = {}
    unknown: dict[int, None] = {}

    def fix(m: re.Match[str]) -> str:
        numbers = _numbers(m.group("body"))
        known = [n for n in dict.fromkeys(numbers) if n in by_number]
        for n in numbers:
            if n in by_number:
                cited.setdefault(n, by_number[n])
            else:
                unknown.setdefault(n, None)
        if len(known) == len(set(numbers)):
            return m.group(0)
        space, trail = m.group("space"), m.group("trail")
        if known:
            return space + "[" + ", ".join(str(n) for n in known) + "]" + trail
        # Drop the marker with one side's spacing: "fact [9]." -> "fact.", "[9] Fact" -> "Fact".
        if m.string.startswith("[", m.end()):
            return space
        return trail if space else ""

    text = _MARKER.sub(fix, answer)
    return text, list(cited.values()), list(unknown)


_CITATION = re.compile(rf"\[\s*{_NUMBER_LIST}\s*\]")


def attribute(
    answer: str, sources: list[Source], min_overlap: float = 0.5, limit: int = 2
) -> list[Source]:
    """Sources that support an uncited ``answer`` by term overlap, best first (at most ``limit``).

    Overlap is the share of the answer's distinct ``analyze`` terms found in the source's text
    (and title); sources at or above ``min_overlap`` qualify. A no-answer reply gets none.
    """
    if is_no_answer(answer):
        return []
    terms = set(analyze(_CITATION.sub(" ", answer)))
    if not terms:
        return []
    scored = []
    for source in sources:
        found = set(analyze(f"{source.hit.title} {source.hit.text}"))
        share = len(terms & found) / len(terms)
        if share >= min_overlap:
            scored.append((-share, source.number, source))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [source for _, _, source in scored[:limit]]


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
    text = _CITATION.sub(" ", answer)
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
    if _CITATION.search(text):  # a cited reply is an answer, however hedged
        return False
    return bool(_NO_ANSWER_PATTERNS.search(text))
