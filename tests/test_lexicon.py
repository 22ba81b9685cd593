"""The shared word tables and the parsers that read them."""

from datetime import UTC, datetime

from engram.adversarial.conflicts import disagree
from engram.agents.scoring import parse_rating
from engram.lexicon import CARDINALS, MONTHS, cardinals_up_to
from engram.timeparse import parse_time_range


def test_cardinal_values():
    assert CARDINALS["one"] == 1 and CARDINALS["twelve"] == 12
    assert CARDINALS["nineteen"] == 19 and CARDINALS["seventy"] == 70
    assert set(cardinals_up_to(10).values()) == set(range(1, 11))


def test_months_and_abbreviations():
    assert MONTHS["january"] == MONTHS["jan"] == 1
    assert MONTHS["september"] == MONTHS["sep"] == MONTHS["sept"] == 9
    assert len({v for v in MONTHS.values()}) == 12


def test_time_phrases_read_number_words():
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    three = parse_time_range("what happened three days ago", reference=now)
    twelve = parse_time_range("what happened twelve days ago", reference=now)
    assert three is not None and twelve is not None
    assert twelve.start < three.start


def test_ratings_read_number_words():
    assert parse_rating("I would say nine.") == 9
    assert parse_rating("eleven") is None


def test_conflicting_counts_in_words():
    a = "The museum in Lisbon opened with seventeen galleries for visitors."
    b = "The museum in Lisbon opened with eighteen galleries for visitors."
    assert disagree(a, b)
    assert not disagree(a, a)
