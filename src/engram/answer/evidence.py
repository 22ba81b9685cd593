"""Evidence sentences: split recalled passages into sentences and rank them for a question.

A small model reads one or two sentences far better than a page, so the extractive reader
looks only at the sentences that share the most (rare) words with the question.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from engram.index.analyzer import analyze

# A sentence ends at . ! or ? (plus closing quotes/brackets) before whitespace and an upper-case
# letter, digit, quote or bracket; at a blank line; or before a markdown list item or heading.
# Other line breaks are wrapping. Short abbreviations ("e.g.", "St.", initials) end nothing.
_BOUNDARY = re.compile(
    r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9€$£])"
    r"|\n[ \t]*\n\s*"
    r"|\n(?=[ \t]*(?:#|[-*+][ \t]|\d+[.)][ \t]))"
)
_ABBREVIATION = re.compile(r"(?:\b[A-Z]|\b(?:e\.g|i\.e|etc|vs|St|Mr|Mrs|Ms|Dr|No|approx))\.$")
_HEADING = re.compile(r"^\s*#")
_MARKUP = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
# "how long", "how far", ...: the word after "how" says what kind of answer is wanted; it is
# not a content word that the answer's sentence repeats ("twice as long" does not say how long).
_HOW = re.compile(r"\bhow\s+(\w+)", re.IGNORECASE)


@dataclass
class Sentence:
    """One sentence of a recalled passage. ``source`` is the passage's citation number."""

    text: str
    source: int
    position: int  # index of the sentence within its passage
    score: float = 0.0  # weighted share of the question's terms it contains
    matched: int = 0  # how many distinct question terms it contains
    similarity: float = 0.0  # embedding cosine to the question, when the reader has an embedder
    relevance: float = 0.0  # what the evidence was ranked by: score + weight x similarity


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` in order: wrapped lines joined, bullets stripped, headings left out."""
    pieces: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        if _ABBREVIATION.search(text[start : m.start()]):
            continue
        pieces.append(text[start : m.start()])
        start = m.end()
    pieces.append(text[start:])
    out = []
    for piece in pieces:
        if _HEADING.match(piece):  # a title names the topic; it states no fact
            continue
        piece = " ".join(_MARKUP.sub("", piece).split())
        if re.search(r"\w", piece):
            out.append(piece)
    return out


# A question term found in a passage's title names the passage's topic: it tells which passage,
# not which of its sentences, so inside that passage it counts this much (chosen on 300 SQuAD
# questions of ../shared/data, sample 7, and the samples' questions in samples_qa/dev.jsonl).
TITLE_WEIGHT = 0.5


def question_terms(question: str, language: str = "english") -> set[str]:
    """The question's content terms, without the word that follows "how"."""
    return set(analyze(_HOW.sub("how", question), language))


def rank_sentences(
    question: str,
    passages: list[tuple[int, str]],
    *,
    language: str = "english",
    titles: dict[int, str] | None = None,
) -> list[Sentence]:
    """Every sentence of ``passages`` (``(citation number, text)``), best match first.

    A sentence scores the idf-weighted share of the question's distinct terms it contains;
    idf is computed over the sentences given, so a term found everywhere counts little, and a
    term of the passage's title (``titles`` by citation number) counts ``TITLE_WEIGHT``. Ties
    go to the earlier passage (better recalled), then the earlier sentence.
    """
    sentences = [
        Sentence(text, number, i)
        for number, passage in passages
        for i, text in enumerate(split_sentences(passage))
    ]
    if not sentences:
        return []
    terms = [set(analyze(s.text, language)) for s in sentences]
    wanted = question_terms(question, language)
    df = Counter(t for ts in terms for t in ts & wanted)
    n = len(sentences)
    idf = {t: math.log(1 + (n + 1) / (df.get(t, 0) + 0.5)) for t in wanted}
    weights: dict[int, dict[str, float]] = {}  # per passage: its title's terms count less
    for number in {s.source for s in sentences}:
        topic = set(analyze((titles or {}).get(number, "").replace("_", " "), language))
        weights[number] = {t: idf[t] * (TITLE_WEIGHT if t in topic else 1.0) for t in wanted}
    for sentence, ts in zip(sentences, terms, strict=True):
        weight = weights[sentence.source]
        found = ts & wanted
        sentence.matched = len(found)
        sentence.score = sum(weight[t] for t in found) / (sum(weight.values()) or 1.0)
    order = {id(s): k for k, s in enumerate(sentences)}
    return sorted(sentences, key=lambda s: (-s.score, order[id(s)]))
