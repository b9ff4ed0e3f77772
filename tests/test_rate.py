"""Rate (buttress.rate, a foundation value): parsing text like "60/minute", validation, interval, display."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.rate import Rate


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("60/minute", 60, 60.0),
        ("10/s", 10, 1.0),
        ("5/second", 5, 1.0),
        ("5/seconds", 5, 1.0),
        ("100/hour", 100, 3600.0),
        ("1000/day", 1000, 86400.0),
        ("60/90s", 60, 90.0),
        ("3/1.5s", 3, 1.5),
        ("2/.5s", 2, 0.5),
        ("7/5m", 7, 300.0),
        ("1/2h", 1, 7200.0),
        ("4/2d", 4, 172800.0),
        ("50/100ms", 50, 0.1),
        (" 60 / minute ", 60, 60.0),
        ("100 per hour", 100, 3600.0),
        ("60/MINUTE", 60, 60.0),
        ("1/min", 1, 60.0),
        ("1/sec", 1, 1.0),
        ("1/hr", 1, 3600.0),
    ],
)
def test_parse(text: str, limit: int, period: float) -> None:
    rate = Rate.parse(text)
    assert rate == Rate(limit, period)
    assert rate.period == pytest.approx(period)
    assert rate.interval == pytest.approx(period / limit)


@pytest.mark.parametrize(
    "text", ["", "60", "60/", "/minute", "60/fortnight", "sixty/minute", "-1/s", "1.5/s", "60/0s", "60/s/s"]
)
def test_parse_rejects_bad_text_and_shows_examples(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        Rate.parse(text)
    assert info.value.field in {"rate", "limit"}
    assert "60/minute" in str(info.value) or "e.g." in str(info.value)


def test_parse_bad_text_message_names_the_format() -> None:
    with pytest.raises(ValidationError, match=r"<limit>/<unit>.*got '60/fortnight'.*'60/minute'"):
        Rate.parse("60/fortnight")


def test_parse_zero_period_says_so() -> None:
    with pytest.raises(ValidationError, match="period must be longer than zero, got '60/0s'"):
        Rate.parse("60/0s")


def test_parse_rejects_non_text() -> None:
    with pytest.raises(ValidationError, match=r"rate must be a Rate or text like .*got int 60") as info:
        Rate.parse(60)  # type: ignore[arg-type]
    assert info.value.field == "rate"


@pytest.mark.parametrize("limit", [0, -5, 1.5, True, "60"])
def test_limit_must_be_a_positive_integer(limit: object) -> None:
    with pytest.raises(
        ValidationError, match=r"limit must be an integer >= 1 .*e\.g\. Rate\(60, 60.0\)"
    ) as info:
        Rate(limit, 60.0)  # type: ignore[arg-type]
    assert info.value.field == "limit"


@pytest.mark.parametrize("period", [0, -1.0, float("nan"), float("inf"), "60", True])
def test_period_must_be_positive_and_finite(period: object) -> None:
    with pytest.raises(ValidationError, match=r"period must be a finite number of seconds > 0") as info:
        Rate(60, period)  # type: ignore[arg-type]
    assert info.value.field == "period"


def test_rate_finer_than_a_microsecond_is_refused() -> None:
    with pytest.raises(ValidationError, match="more than one event per microsecond") as info:
        Rate(2_000_000, 1.0)
    assert info.value.field == "rate"
    assert Rate(1_000_000, 1.0).interval == pytest.approx(1e-6)


def test_integer_period_becomes_float_and_rate_is_frozen() -> None:
    rate = Rate(60, 60)
    assert isinstance(rate.period, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rate.limit = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (Rate(60, 60.0), "60/60s"),
        (Rate(10, 1.0), "10/1s"),
        (Rate(3, 1.5), "3/1.5s"),
        (Rate(1, 86400), "1/86400s"),
    ],
)
def test_str(rate: Rate, text: str) -> None:
    assert str(rate) == text
    assert Rate.parse(text) == rate


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (Rate(60, 60.0), "60/minute"),
        (Rate(10, 1.0), "10/s"),
        (Rate(100, 3600.0), "100/hour"),
        (Rate(1000, 86400.0), "1000/day"),
        (Rate(1, 0.001), "1/ms"),
        (Rate(60, 90.0), "60/90s"),
        (Rate(3, 1.5), "3/1.5s"),
        (Rate(1, 1e-05), "1/0.00001s"),  # never in exponent form, which the parser does not read
    ],
)
def test_to_text_names_the_period_and_parses_back(rate: Rate, text: str) -> None:
    assert rate.to_text() == text
    assert Rate.parse(text) == rate


@given(
    limit=st.integers(min_value=1, max_value=10**6),
    period=st.floats(min_value=1.0, max_value=1e7, allow_nan=False, allow_infinity=False),
)
def test_to_text_round_trips_any_rate(limit: int, period: float) -> None:
    rate = Rate(limit, period)
    assert Rate.parse(rate.to_text()) == rate
