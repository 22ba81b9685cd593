"""Citations in a generated answer: check ``[n]`` markers, attribute uncited answers."""

from __future__ import annotations

import re

from engram.answer.grounding import CITATION, NUMBER_LIST, is_no_answer
from engram.index.analyzer import analyze
from engram.prompt.builder import Source

MAX_RANGE = 20  # "[n-m]" wider than this is read as the two numbers n and m

# Any bracketed number list, as stripped before scoring an answer's words (evaluate/ uses it).
CITATION_MARKER = re.compile(r"\[\s*\d+(?:\s*[-–,;]\s*\d+)*\s*\]")
_MARKER = re.compile(rf"(?P<space>[ \t]*)\[\s*(?P<body>{NUMBER_LIST})\s*\](?P<trail>[ \t]*)")
_ITEM = re.compile(r"(\d+)(?:\s*[-–]\s*(\d+))?")


def strip_citations(text: str) -> str:
    """``text`` without citation markers, spaces collapsed."""
    return " ".join(CITATION_MARKER.sub(" ", text).split())


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


def attribute(
    answer: str, sources: list[Source], min_overlap: float = 0.5, limit: int = 2
) -> list[Source]:
    """Sources that support an uncited ``answer`` by term overlap, best first (at most ``limit``).

    Overlap is the share of the answer's distinct ``analyze`` terms found in the source's text
    (and title); sources at or above ``min_overlap`` qualify. A no-answer reply gets none.
    """
    if is_no_answer(answer):
        return []
    terms = set(analyze(CITATION.sub(" ", answer)))
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
