"""Relative and absolute time phrases in a query ("yesterday", "last week", "in May 2023")
resolved against a reference time into a ``created_at`` range.

The parser is a small set of regular expressions, deterministic and offline. Ranges are
half-open ``[start, end)`` in seconds since the epoch, computed in a time zone (UTC unless
given). Calendar phrases ("last week", "last month") mean the previous calendar unit (weeks
start on Monday); rolling phrases ("the past 3 days", "the last week") end at the reference.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from engram.lexicon import MONTHS, cardinals_up_to
from engram.store.filters import to_timestamp

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
NUMBERS = {
    "a": 1,
    "an": 1,
    **cardinals_up_to(12),
    "a couple of": 2,
    "a few": 3,
    "several": 3,
}

_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_NUM = r"(?P<n>\d+|a couple of|a few|several|" + "|".join(NUMBERS) + r")"
_UNIT = r"(?P<unit>day|week|month|year)s?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_WEEKDAY = r"(?P<weekday>" + "|".join(WEEKDAYS) + r")"
_PREFIX = r"(?:(?P<prefix>since|after|before|until)\s+)?"
_ON = r"(?:(?:on|in|during)\s+)?"
_VERB_MAY = "may"  # lowercase "may" without "in"/"during" before it is the verb


@dataclass(frozen=True)
class TimeRange:
    """A half-open time range ``[start, end)`` (``None``: unbounded) found in ``text[span]``."""

    start: float | None
    end: float | None
    phrase: str = ""
    span: tuple[int, int] = (0, 0)

    def where(self) -> dict[str, Any]:
        """The range as a filter on ``created_at``."""
        cond: dict[str, float] = {}
        if self.start is not None:
            cond["$gte"] = self.start
        if self.end is not None:
            cond["$lt"] = self.end
        return {"created_at": cond}

    def contains(self, t: float) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)

    def intersect(self, start: float | None, end: float | None) -> TimeRange:
        """This range narrowed by ``start``/``end`` bounds."""
        lo = max((x for x in (self.start, start) if x is not None), default=None)
        hi = min((x for x in (self.end, end) if x is not None), default=None)
        return TimeRange(lo, hi, self.phrase, self.span)


def to_epoch(value: Any) -> float:
    """Seconds since the epoch from a number, an ISO-8601 string or a ``datetime``."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    return to_timestamp(value)


# -- calendar helpers ------------------------------------------------------------------------
def _day(d: date, tz: tzinfo) -> tuple[datetime, datetime]:
    start = datetime(d.year, d.month, d.day, tzinfo=tz)
    return start, start + timedelta(days=1)


def _week(d: date, tz: tzinfo) -> tuple[datetime, datetime]:
    start, _ = _day(d - timedelta(days=d.weekday()), tz)
    return start, start + timedelta(days=7)


def _add_months(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + delta
    return index // 12, index % 12 + 1


def _month(year: int, month: int, tz: tzinfo) -> tuple[datetime, datetime]:
    ny, nm = _add_months(year, month, 1)
    return datetime(year, month, 1, tzinfo=tz), datetime(ny, nm, 1, tzinfo=tz)


def _year(year: int, tz: tzinfo) -> tuple[datetime, datetime]:
    return datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz)


def _number(text: str) -> int:
    text = " ".join(text.lower().split())
    return int(text) if text.isdigit() else NUMBERS[text]


def _unit_back(unit: str, n: int, now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """The calendar ``unit`` (day, week, month, year) ``n`` units before ``now``."""
    today = now.date()
    if unit == "day":
        return _day(today - timedelta(days=n), tz)
    if unit == "week":
        return _week(today - timedelta(weeks=n), tz)
    if unit == "month":
        return _month(*_add_months(today.year, today.month, -n), tz)
    return _year(today.year - n, tz)


def _rolling(unit: str, n: int, now: datetime) -> datetime:
    """``now`` minus ``n`` units (months of 30 days, years of 365)."""
    days = {"day": 1, "week": 7, "month": 30, "year": 365}[unit] * n
    return now - timedelta(days=days)


def _latest_month(month: int, now: datetime) -> int:
    """The year of the latest ``month`` that began no later than ``now``."""
    return now.year if month <= now.month else now.year - 1


def _safe_date(year: int, month: int, day: int) -> date | None:
    if 1 <= day <= calendar.monthrange(year, month)[1]:
        return date(year, month, day)
    return None


# -- phrase handlers: each returns (start, end) datetimes, or None for an impossible date ----
Span = tuple[datetime, datetime]


def _h_relative_day(m: re.Match[str], now: datetime, tz: tzinfo) -> Span:
    word = m.group("word").lower()
    today = now.date()
    if word.endswith("day before yesterday"):
        return _day(today - timedelta(days=2), tz)
    if word == "yesterday":
        return _day(today - timedelta(days=1), tz)
    if word == "last night":
        start, _ = _day(today - timedelta(days=1), tz)
        return start + timedelta(hours=18), start + timedelta(hours=30)
    if word == "tomorrow":
        return _day(today + timedelta(days=1), tz)
    return _day(today, tz)  # today, tonight, this morning/afternoon/evening


def _h_ago(m: re.Match[str], now: datetime, tz: tzinfo) -> Span:
    return _unit_back(m.group("unit").lower(), _number(m.group("n")), now, tz)


def _h_rolling(m: re.Match[str], now: datetime, tz: tzinfo) -> Span:
    n = _number(m.group("n")) if "n" in m.re.groupindex else 1
    return _rolling(m.group("unit").lower(), n, now), now


def _h_last_unit(m: re.Match[str], now: datetime, tz: tzinfo) -> Span:
    return _unit_back(m.group("unit").lower(), 1, now, tz)


def _h_this_unit(m: re.Match[str], now: datetime, tz: tzinfo) -> Span:
    unit = m.group("unit").lower()
    today = now.date()
    if unit == "week":
        return _week(today, tz)
    if unit == "month":
        return _month(today.year, today.month, tz)
    return _year(today.year, tz)


def _h_weekend(m: re.Match[str], now: datetime, tz: tzinfo) -> Span:
    week_start, _ = _week(now.date(), tz)
    if m.group("which").lower() != "this":
        week_start -= timedelta(days=7)
    start = week_start + timedelta(days=5)
    return start, start + timedelta(days=2)


def _h_weekday(m: re.Match[str], now: datetime, tz: tzinfo) -> Span:
    wanted = WEEKDAYS.index(m.group("weekday").lower())
    back = (now.weekday() - wanted) % 7 or 7  # the latest such day strictly before today
    return _day(now.date() - timedelta(days=back), tz)


def _h_iso(m: re.Match[str], now: datetime, tz: tzinfo) -> Span | None:
    d = _safe_date(int(m.group("year")), int(m.group("m")), int(m.group("day")))
    return _day(d, tz) if d else None


def _h_date(m: re.Match[str], now: datetime, tz: tzinfo) -> Span | None:
    if m.group("month") == _VERB_MAY:
        return None
    month = MONTHS[m.group("month").lower()]
    day = int(m.group("day"))
    if m.group("year"):
        d = _safe_date(int(m.group("year")), month, day)
    else:
        d = _safe_date(now.year, month, day)
        if d is not None and d > now.date():
            d = _safe_date(now.year - 1, month, day)
    return _day(d, tz) if d else None


def _h_month_year(m: re.Match[str], now: datetime, tz: tzinfo) -> Span | None:
    if m.group("month") == _VERB_MAY:
        return None
    return _month(int(m.group("year")), MONTHS[m.group("month").lower()], tz)


def _h_month(m: re.Match[str], now: datetime, tz: tzinfo) -> Span:
    month = MONTHS[m.group("month").lower()]
    which = (m.groupdict().get("which") or "").lower()
    year = _latest_month(month, now)
    if which == "last" and year == now.year and month == now.month:
        year -= 1
    return _month(year, month, tz)


def _h_year(m: re.Match[str], now: datetime, tz: tzinfo) -> Span:
    return _year(int(m.group("year")), tz)


_PATTERNS = [
    (
        r"(?P<word>(?:the\s+)?day\s+before\s+yesterday|yesterday|last\s+night|today|tonight|"
        r"tomorrow|this\s+(?:morning|afternoon|evening))",
        _h_relative_day,
    ),
    (rf"{_NUM}\s+{_UNIT}\s+ago", _h_ago),
    (rf"(?:the\s+)?(?:last|past|previous)\s+{_NUM}\s+{_UNIT}", _h_rolling),
    (rf"(?:the\s+(?:last|past|previous)|past|previous)\s+{_UNIT}", _h_rolling),
    (rf"last\s+{_UNIT}", _h_last_unit),
    (rf"this\s+{_UNIT}", _h_this_unit),
    (r"(?P<which>last|this\s+past|past|this)\s+weekend", _h_weekend),
    (rf"(?:last|on|this\s+past|past)\s+{_WEEKDAY}", _h_weekday),
    (rf"{_ON}(?P<year>(?:19|20)\d\d)-(?P<m>\d\d)-(?P<day>\d\d)", _h_iso),
    (rf"{_ON}(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH},?(?:\s+{_YEAR})?", _h_date),
    (rf"{_ON}{_MONTH}\s+{_DAY}(?!\d)(?:,?\s+{_YEAR})?", _h_date),
    (rf"{_ON}{_MONTH},?\s+(?:of\s+)?{_YEAR}", _h_month_year),
    (rf"(?:(?P<which>last|this)|in|during|early|late|mid)[\s-]+{_MONTH}", _h_month),
    (rf"(?:in|during)\s+{_YEAR}", _h_year),
]
_COMPILED = [
    (re.compile(rf"\b{_PREFIX}(?P<body>{pattern})\b", re.IGNORECASE), handler)
    for pattern, handler in _PATTERNS
] + [  # after a prefix, a bare month or year is enough: "since May", "before 2020"
    (re.compile(rf"\b(?P<prefix>since|after|before|until)\s+{body}\b", re.IGNORECASE), handler)
    for body, handler in ((_MONTH, _h_month), (_YEAR, _h_year))
]


def parse_time_range(text: str, reference: Any = None, tz: tzinfo = UTC) -> TimeRange | None:
    """The time range named in ``text`` relative to ``reference`` (default: now), or None.

    The longest phrase wins (then the earliest). ``since``/``after`` X give ``[X, ∞)`` /
    ``[end of X, ∞)``; ``before``/``until`` X give ``(-∞, X)`` / ``(-∞, end of X)``.
    """
    ref = datetime.now(tz) if reference is None else datetime.fromtimestamp(to_epoch(reference), tz)
    best: tuple[int, int, re.Match[str], Any] | None = None
    for regex, handler in _COMPILED:
        for m in regex.finditer(text):
            key = (-(m.end() - m.start()), m.start())
            if best is None or key < best[:2]:
                found = handler(m, ref, tz)
                if found is not None:
                    best = (*key, m, found)
    if best is None:
        return None
    m, (start, end) = best[2], best[3]
    prefix = (m.group("prefix") or "").lower()
    if prefix == "since":
        end = None
    elif prefix == "after":
        start, end = end, None
    elif prefix == "before":
        start, end = None, start
    elif prefix == "until":
        start = None
    return TimeRange(
        start.timestamp() if start is not None else None,
        end.timestamp() if end is not None else None,
        m.group(0),
        (m.start(), m.end()),
    )


def strip_time_phrase(text: str, found: TimeRange) -> str:
    """``text`` without the phrase ``found`` in it (the original text if nothing remains)."""
    a, b = found.span
    rest = " ".join((text[:a] + " " + text[b:]).split())
    rest = re.sub(r"\s+([?.!,])", r"\1", rest)
    return rest if re.search(r"\w", rest) else text
