"""BreakerRegistry: one breaker per key, created once even under racing threads."""

from __future__ import annotations

import threading
import uuid

import pytest

from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._breaker import CircuitBreaker, live_breakers
from buttress.resilience._breaker_registry import OPTIONS, BreakerRegistry


def registry(**defaults: object) -> BreakerRegistry:
    return BreakerRegistry(metrics=MetricsRegistry(), events=EventBus(), **defaults)  # type: ignore[arg-type]


def test_the_same_breaker_per_key_with_defaults_and_first_use_overrides() -> None:
    clock = FakeClock()
    breakers = BreakerRegistry(clock=clock, metrics=MetricsRegistry(), events=EventBus(), open_duration=7)
    api = breakers.get("api.example.com", consecutive_failures=2)
    assert breakers.get("api.example.com") is api
    assert breakers.get("api.example.com", consecutive_failures=9) is api  # overrides apply on creation only
    assert api.config.consecutive_failures == 2
    assert api.config.open_duration == 7
    assert api.clock is clock
    other = breakers.get("other.example.com")
    assert other.config.consecutive_failures == 5
    assert list(breakers) == ["api.example.com", "other.example.com"]
    assert len(breakers) == 2
    assert "api.example.com" in breakers
    assert "missing" not in breakers
    assert breakers.find("api.example.com") is api
    assert breakers.find("missing") is None
    assert "missing" not in breakers  # find never creates
    assert [s.name for s in breakers.snapshot()] == ["api.example.com", "other.example.com"]
    assert repr(breakers) == "BreakerRegistry(2 breakers)"


def test_racing_threads_create_exactly_one_breaker_per_key() -> None:
    breakers = registry()
    key = f"race-{uuid.uuid4().hex}"
    barrier = threading.Barrier(16)
    got: list[CircuitBreaker] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        breaker = breakers.get(key)
        with lock:
            got.append(breaker)

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 16
    assert len({id(b) for b in got}) == 1
    assert len(breakers) == 1
    created = [b for b in live_breakers() if b.name == key]
    assert created == [got[0]]  # only one was ever built


def test_unknown_options_suggest_the_right_name() -> None:
    with pytest.raises(ValidationError, match="did you mean 'open_duration'") as info:
        registry(open_duraton=5)
    assert info.value.field == "open_duraton"
    with pytest.raises(ValidationError, match="the options are consecutive_failures, failure_rate"):
        registry().get("k", colour="red")
    assert "record" in OPTIONS
    assert "store" not in OPTIONS


def test_bad_values_fail_when_given_not_on_first_use() -> None:
    with pytest.raises(ValidationError) as info:
        registry(failure_rate=2)
    assert info.value.field == "failure_rate"
    with pytest.raises(ValidationError) as info:
        registry(ignore="KeyError")
    assert info.value.field == "ignore"
    breakers = registry(record=(KeyError,))
    with pytest.raises(ValidationError) as info:
        breakers.get("k", half_open_probes=0)
    assert info.value.field == "half_open_probes"
    assert "k" not in breakers
    with pytest.raises(ValidationError) as info:
        breakers.get("bad key")
    assert info.value.field == "key"
