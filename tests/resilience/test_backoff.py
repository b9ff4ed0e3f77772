"""Backoff: each kind and jitter, its bounds, and the errors for bad settings."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.resilience._backoff import Backoff


def test_defaults_are_exponential_half_second_doubling_capped_at_ten_with_full_jitter() -> None:
    backoff = Backoff()
    assert (backoff.kind, backoff.initial, backoff.multiplier, backoff.max_delay, backoff.jitter) == (
        "exponential",
        0.5,
        2.0,
        10.0,
        "full",
    )


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        (Backoff("constant", 1.5, jitter="none"), [1.5, 1.5, 1.5, 1.5]),
        (Backoff("linear", 0.5, jitter="none"), [0.5, 1.0, 1.5, 2.0]),
        (Backoff("linear", 4.0, max_delay=10.0, jitter="none"), [4.0, 8.0, 10.0, 10.0]),
        (Backoff("exponential", 0.5, jitter="none"), [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),
        (Backoff("exponential", 1.0, multiplier=3.0, max_delay=20.0, jitter="none"), [1.0, 3.0, 9.0, 20.0]),
    ],
)
def test_base_delays_grow_by_kind_and_stop_at_max_delay(backoff: Backoff, expected: list[float]) -> None:
    rng = random.Random(0)
    assert [backoff.base(n) for n in range(1, len(expected) + 1)] == expected
    assert [backoff.delay(n, 0.0, rng) for n in range(1, len(expected) + 1)] == expected


def test_exponential_growth_past_float_range_is_capped_not_an_overflow() -> None:
    backoff = Backoff("exponential", 1.0, multiplier=100.0, max_delay=60.0, jitter="none")
    assert backoff.base(10_000) == 60.0


def test_linear_ignores_the_multiplier() -> None:
    assert Backoff("linear", 1.0, multiplier=5.0, jitter="none").base(3) == 3.0


def test_same_seed_gives_the_same_delays() -> None:
    backoff = Backoff()
    first = [backoff.delay(n, 0.0, random.Random(7)) for n in range(1, 6)]
    second = [backoff.delay(n, 0.0, random.Random(7)) for n in range(1, 6)]
    assert first == second
    assert len(set(first)) > 1


def test_full_jitter_spreads_over_the_whole_range() -> None:
    backoff = Backoff("constant", 1.0, jitter="full")
    rng = random.Random(1)
    delays = [backoff.delay(1, 0.0, rng) for _ in range(2000)]
    assert min(delays) < 0.05
    assert max(delays) > 0.95


def test_equal_jitter_keeps_at_least_half_the_base() -> None:
    backoff = Backoff("constant", 2.0, jitter="equal")
    rng = random.Random(1)
    delays = [backoff.delay(1, 0.0, rng) for _ in range(2000)]
    assert 1.0 <= min(delays) < 1.05
    assert 1.95 < max(delays) <= 2.0


def test_decorrelated_jitter_grows_from_the_previous_delay() -> None:
    backoff = Backoff("exponential", 1.0, max_delay=1000.0, jitter="decorrelated")
    rng = random.Random(3)
    first = backoff.delay(1, 0.0, rng)
    assert 1.0 <= first <= 3.0  # the first draw behaves as if the previous delay was `initial`
    later = backoff.delay(2, 100.0, rng)
    assert 1.0 <= later <= 300.0
    spread = [backoff.delay(5, 100.0, random.Random(i)) for i in range(200)]
    assert max(spread) > 150.0  # grows from `previous`, not from the retry number


def test_decorrelated_jitter_is_capped() -> None:
    backoff = Backoff("exponential", 1.0, max_delay=5.0, jitter="decorrelated")
    rng = random.Random(0)
    assert all(backoff.delay(1, 50.0, rng) <= 5.0 for _ in range(100))
    assert any(backoff.delay(1, 50.0, rng) == 5.0 for _ in range(100))


kinds = st.sampled_from(["constant", "linear", "exponential"])
jitters = st.sampled_from(["none", "full", "equal", "decorrelated"])


@st.composite
def backoffs(draw: st.DrawFn) -> Backoff:
    initial = draw(st.floats(0.0, 50.0))
    max_delay = draw(st.floats(initial, 100.0))
    multiplier = draw(st.floats(1.0, 100.0))
    return Backoff(draw(kinds), initial, multiplier, max_delay, draw(jitters))


@given(
    backoff=backoffs(),
    retry_number=st.integers(1, 5000),
    previous=st.floats(0.0, 1e6),
    seed=st.integers(0, 2**32),
)
def test_every_delay_is_within_its_jitter_bounds(
    backoff: Backoff, retry_number: int, previous: float, seed: int
) -> None:
    delay = backoff.delay(retry_number, previous, random.Random(seed))
    base = backoff.base(retry_number)
    assert 0.0 <= delay <= backoff.max_delay
    assert 0.0 <= base <= backoff.max_delay
    if backoff.jitter == "none":
        assert delay == base
    elif backoff.jitter == "full":
        assert 0.0 <= delay <= base
    elif backoff.jitter == "equal":
        assert base / 2 <= delay <= base
    else:
        assert backoff.initial <= delay <= backoff.max_delay


def test_constant_factory_has_no_jitter_and_fits_max_delay_to_the_delay() -> None:
    assert Backoff.constant(2.0) == Backoff("constant", 2.0, 1.0, 10.0, "none")
    assert Backoff.constant(30.0).max_delay == 30.0
    assert Backoff.constant(0).delay(1, 0.0, random.Random()) == 0.0
    assert Backoff.constant(1.0, jitter="full").jitter == "full"


def test_linear_and_exponential_factories() -> None:
    assert Backoff.linear(1.0, max_delay=5.0) == Backoff("linear", 1.0, 1.0, 5.0, "full")
    assert Backoff.exponential() == Backoff()
    assert Backoff.exponential(0.1, multiplier=3.0, max_delay=2.0, jitter="equal") == Backoff(
        "exponential", 0.1, 3.0, 2.0, "equal"
    )


def test_backoff_is_frozen_and_numbers_become_floats() -> None:
    backoff = Backoff("constant", 1, 2, 3, "none")
    assert isinstance(backoff.initial, float)
    assert isinstance(backoff.multiplier, float)
    assert isinstance(backoff.max_delay, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        backoff.initial = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field", "hint"),
    [
        ({"kind": "fibonacci"}, "kind", "constant, linear, exponential"),
        ({"jitter": "some"}, "jitter", "none, full, equal, decorrelated"),
        ({"initial": -1.0}, "initial", "e.g. 0.5"),
        ({"initial": float("nan")}, "initial", ">= 0"),
        ({"initial": True}, "initial", "finite number"),
        ({"initial": "1"}, "initial", "finite number"),
        ({"max_delay": float("inf")}, "max_delay", "e.g. 10.0"),
        ({"initial": 5.0, "max_delay": 1.0}, "max_delay", "max_delay must be >= initial"),
        ({"multiplier": 0.5}, "multiplier", "between 1 and 100"),
        ({"multiplier": 1000}, "multiplier", "e.g. 2.0"),
        ({"multiplier": True}, "multiplier", "between 1 and 100"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(kwargs: dict[str, object], field: str, hint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Backoff(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert hint in str(caught.value)


def test_constant_factory_validates_the_delay() -> None:
    with pytest.raises(
        ValidationError, match=r"delay must be a finite number of seconds >= 0, got -1"
    ) as caught:
        Backoff.constant(-1)
    assert caught.value.field == "delay"
