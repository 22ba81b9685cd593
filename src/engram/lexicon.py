"""Word tables shared by the parsers: number words and month names.

One place for the words that time phrases, answer spans, importance ratings and conflicting
facts all read, so that a word added here is known to each of them.
"""

from __future__ import annotations

_UNITS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]

CARDINALS: dict[str, int] = {
    **{w: i for i, w in enumerate(_UNITS, start=1)},
    **{w: i for i, w in enumerate(_TEENS, start=10)},
    **{w: 10 * i for i, w in enumerate(_TENS, start=2)},
}
"""Cardinal number words, one to ninety, with their values."""

MAGNITUDES = ("hundred", "thousand", "million", "billion", "trillion", "dozen")
ORDINALS = ("first", "second", "third", "fourth", "fifth")
FRACTIONS = ("half", "quarter")
TIMES = ("once", "twice")
FREQUENCIES = ("daily", "weekly", "monthly", "yearly")

MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
MONTHS: dict[str, int] = {
    **{name: i for i, name in enumerate(MONTH_NAMES, start=1)},
    **{name[:3]: i for i, name in enumerate(MONTH_NAMES, start=1)},
    "sept": 9,
}
"""Month names and their three-letter abbreviations (and "sept"), with the month's number."""

SEASONS = ("spring", "summer", "autumn", "winter")


def cardinals_up_to(n: int) -> dict[str, int]:
    """The cardinal words whose value is at most ``n``."""
    return {w: v for w, v in CARDINALS.items() if v <= n}
