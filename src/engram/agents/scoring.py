"""Scores for agent recall (Park et al. 2023, Generative Agents): relevance, recency, importance.

``final = (w_rel * relevance + w_rec * recency + w_imp * importance) / (w_rel + w_rec + w_imp)``
with every part in [0, 1]: relevance is the search score min-max normalised over the
candidates, recency ``exp(-ln 2 * age / half_life)``, importance ``(rating - 1) / 9`` for a
1-10 rating stored with the memory (or estimated from its text).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engram.generate.base import Generator
from engram.lexicon import cardinals_up_to
from engram.types import Hit

DAY = 86_400.0
DEFAULT_HALF_LIFE = 7 * DAY


@dataclass(frozen=True)
class Weights:
    """Weights of the three parts of an agent's recall score."""

    relevance: float = 1.0
    recency: float = 0.5
    importance: float = 0.5

    def __post_init__(self) -> None:
        parts = (self.relevance, self.recency, self.importance)
        if min(parts) < 0 or sum(parts) <= 0:
            raise ValueError(f"weights must be >= 0 and not all 0, got {parts}")


def recency(age: float, half_life: float = DEFAULT_HALF_LIFE) -> float:
    """``exp(-ln 2 * age / half_life)``: 1 now, 0.5 after one half-life (ages < 0 count as 0)."""
    if half_life <= 0:
        raise ValueError(f"half_life must be positive, got {half_life}")
    return math.exp(-math.log(2) * max(0.0, age) / half_life)


# -- importance ------------------------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*|\d+(?:[.,:]\d+)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|\n)\s*[\"'(]*([A-Z][\w'’-]*)")
_LIFE_EVENTS = re.compile(
    r"\b(died|death|funeral|passed away|cancer|diagnos\w*|hospital\w*|surgery|accident|"
    r"injur\w*|pregnan\w*|born|birth|married|wedding|engaged|divorce\w*|broke up|break ?up|"
    r"fired|laid off|promot\w*|graduat\w*|new job|quit|moved|adopt\w*|lost my|retir\w*)\b",
    re.IGNORECASE,
)
_EMOTIONS = re.compile(
    r"\b(love[ds]?|hate[ds]?|afraid|scared|terrified|anxious|worried|excited|thrilled|proud|"
    r"grateful|thankful|sad|upset|angry|furious|depressed|lonely|heartbroken|devastated|"
    r"overwhelmed|stressed|happiest|dream|fear|cried|crying|miss(?:ed)?)\b",
    re.IGNORECASE,
)
_COMMITMENTS = re.compile(
    r"\b(I(?:'m| am) going to|I will|I'll|I plan|I'm planning|I decided|I've decided|"
    r"my goal|I want to|I need to|I promise|promised|deadline|appointment|remember|"
    r"don't forget|never|always|important|must)\b",
    re.IGNORECASE,
)
_PREFERENCES = re.compile(
    r"\b(I (?:really )?(?:like|love|hate|prefer|enjoy|can't stand)|my favou?rite|"
    r"allergic|vegetarian|vegan|my (?:name|birthday|address|wife|husband|partner|son|"
    r"daughter|kids?|mom|dad|mother|father|sister|brother|dog|cat))\b",
    re.IGNORECASE,
)
_SMALL_TALK = re.compile(
    r"^\W*(hi|hey|hello|thanks|thank you|ok(?:ay)?|cool|nice|great|sure|yes|no|yeah|yep|"
    r"lol|haha|bye|good night|good morning|see you|sounds good|got it)\b",
    re.IGNORECASE,
)
_MONTH_WORDS = re.compile(
    r"\b(january|february|march|april|june|july|august|september|october|november|december|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|yesterday)\b",
    re.IGNORECASE,
)


def heuristic_importance(text: str) -> int:
    """A 1-10 importance estimate from cheap cues, no model.

    Points for length, named things (capitalised words inside sentences), numbers and dates,
    life events, emotions, commitments and plans, and personal facts or preferences;
    short greetings and acknowledgements stay at 1.
    """
    words = _WORD.findall(text)
    if not words:
        return 1
    if len(words) <= 6 and _SMALL_TALK.search(text):
        return 1
    score = 1.0
    score += 0.5 * (len(words) >= 8) + 0.5 * (len(words) >= 20) + 0.5 * (len(words) >= 40)
    starts = {m.group(1) for m in _SENTENCE_START.finditer(text)}
    names = {w for w in words if w[0].isupper() and w not in starts and w != "I"}
    score += min(2.0, 0.75 * len(names))
    if any(w[0].isdigit() for w in words) or _MONTH_WORDS.search(text):
        score += 1.0
    score += min(3.0, 2.0 * len(_LIFE_EVENTS.findall(text)))
    score += min(1.5, 0.75 * len(_EMOTIONS.findall(text)))
    score += min(2.0, 1.0 * len(_COMMITMENTS.findall(text)))
    score += min(1.5, 1.0 * len(_PREFERENCES.findall(text)))
    return max(1, min(10, round(score)))


IMPORTANCE_PROMPT = (
    "On the scale of 1 to 10, where 1 is purely mundane (e.g., brushing teeth, making bed) "
    "and 10 is extremely poignant (e.g., a break up, college acceptance), rate the likely "
    "poignancy of the following piece of memory. Reply with one number.\n"
    "Memory: {text}\nRating:"
)
_RATING_WORDS = cardinals_up_to(10)
_RATING = re.compile(
    r"(?<![\d.])(10|[1-9])(?:\.\d+)?(?![\d.]*\d)(?:\s*(?:/|out of)\s*10)?|\b("
    + "|".join(_RATING_WORDS)
    + r")\b",
    re.IGNORECASE,
)


def parse_rating(reply: str) -> int | None:
    """The first 1-10 rating in a model's reply ("7", "Rating: 8/10", "six"), else None."""
    m = _RATING.search(reply)
    if m is None:
        return None
    return int(m.group(1)) if m.group(1) else _RATING_WORDS[m.group(2).lower()]


def model_importance(text: str, generator: Generator) -> int:
    """A 1-10 rating asked of ``generator`` (falls back to the heuristic when unreadable)."""
    prompt = IMPORTANCE_PROMPT.format(text=" ".join(text.split())[:1000])
    reply = generator.complete([{"role": "user", "content": prompt}], max_tokens=8)
    rating = parse_rating(reply)
    return rating if rating is not None else heuristic_importance(text)


# -- rescoring -------------------------------------------------------------------------------
def hit_importance(hit: Hit) -> int:
    """The 1-10 rating stored in ``hit.metadata["importance"]``, else the heuristic."""
    value = hit.metadata.get("importance")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(1, min(10, round(value)))
    return heuristic_importance(hit.text)


def rescore(
    hits: Sequence[Hit],
    *,
    now: float,
    weights: Weights = Weights(),
    half_life: float = DEFAULT_HALF_LIFE,
    importance: Callable[[Hit], int] = hit_importance,
) -> list[Hit]:
    """``hits`` ordered by the agent score, best first.

    Each hit's ``score`` becomes the final score; ``scores`` gains ``relevance``, ``recency``,
    ``importance`` (all in [0, 1]) and ``agent`` (the final score).
    """
    if not hits:
        return []
    raw = [h.score for h in hits]
    lo, hi = min(raw), max(raw)
    total = weights.relevance + weights.recency + weights.importance
    for h in hits:
        rel = (h.score - lo) / (hi - lo) if hi > lo else 1.0
        rec = recency(now - h.created_at, half_life)
        imp = (importance(h) - 1) / 9
        final = (weights.relevance * rel + weights.recency * rec + weights.importance * imp) / total
        h.scores.update(relevance=rel, recency=rec, importance=imp, agent=final)
        h.score = final
    return sorted(hits, key=lambda h: (-h.score, -h.created_at, h.id))
