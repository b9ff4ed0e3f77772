"""One suite for the resilience stores: every BreakerStore, LimiterStore and BudgetStore must answer alike.

Each test runs four ways: the memory and the Redis implementation of its part, each through its sync
methods and through its async twins (run on an event loop owned by the subject, so the Redis clients
live on one loop). Every store reads one FakeClock whose monotonic and wall time start equal: the memory
stores read its monotonic time, RedisState passes its wall time into the Lua scripts (``now_arg``), so
bucket edges fall at the same instants in both. Each test gets a fresh Redis key prefix (never a FLUSHDB).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import (
    BreakerConfig,
    BreakerState,
    BreakerStore,
    BudgetStore,
    LimiterStore,
    MemoryBreakerStore,
    MemoryBudgetStore,
    MemoryLimiterStore,
    RedisBreakerStore,
    RedisBudgetStore,
    RedisLimiterStore,
    RedisState,
)
from buttress.resilience._breaker_state import FAILURE, NOOP_PERMIT, SLOW, SUCCESS

START = 1_000_000.0  # as wall time too: small enough that float seconds keep microseconds exact
DOWN_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once
BREAKER = BreakerConfig(
    consecutive_failures=2,
    open_duration=10.0,
    open_duration_max=40.0,
    half_open_probes=1,
    probe_lease=5.0,
    slow_call_duration=1.0,
)
INTERVAL, BURST = 0.1, 3  # the limiter: 10/s, bursts of 3
WINDOW = 1.0  # the budget: 10 buckets of 0.1 s

PARTS: dict[str, Callable[[FakeClock, RedisState | None], Any]] = {
    "breaker": lambda clock, state: (
        MemoryBreakerStore(BREAKER, clock.monotonic)
        if state is None
        else RedisBreakerStore(state, "breaker", BREAKER)
    ),
    "limiter": lambda clock, state: (
        MemoryLimiterStore(interval=INTERVAL, burst=BURST, max_keys=100, now=clock.monotonic)
        if state is None
        else RedisLimiterStore(
            state, "limiter", interval=INTERVAL, period=1.0, limit=10, burst=BURST, max_keys=100
        )
    ),
    "budget": lambda clock, state: (
        MemoryBudgetStore(WINDOW, clock.monotonic)
        if state is None
        else RedisBudgetStore(state, "budget", WINDOW)
    ),
}
PROTOCOLS = {"breaker": BreakerStore, "limiter": LimiterStore, "budget": BudgetStore}
CLASSES = [
    MemoryBreakerStore,
    RedisBreakerStore,
    MemoryLimiterStore,
    RedisLimiterStore,
    MemoryBudgetStore,
    RedisBudgetStore,
]


class Subject:
    """A store under test, called sync or async through the same names, with its clock."""

    def __init__(self, kind: str, mode: str, store: Any, clock: FakeClock, state: RedisState | None) -> None:
        self.kind = kind
        self.mode = mode
        self.store = store
        self.clock = clock
        self.state = state
        self.loop = asyncio.new_event_loop() if mode == "async" else None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """``subject.take(...)``: ``store.take(...)``, or ``store.atake(...)`` run to completion."""
        if self.loop is None or name in ("keys", "info", "check", "known_state"):
            method: Callable[..., Any] = getattr(self.store, name)
            return method
        fallback = getattr(self.store, "a" + name)
        loop = self.loop
        return lambda *args: loop.run_until_complete(fallback(*args))

    def close(self) -> None:
        if self.state is not None:
            if self.loop is not None:
                self.loop.run_until_complete(self.state.aclose())
            else:
                self.state.close()
        if self.loop is not None:
            self.loop.close()


def subject_for(part: str, request: pytest.FixtureRequest, way: tuple[str, str]) -> Iterator[Subject]:
    """A fresh store of ``part``, ``way`` = (memory or redis, sync or async), closed after the test."""
    kind, mode = way
    clock = FakeClock(start_monotonic=START, start_time=START)
    state = None
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        state = RedisState(url, prefix=f"conf-{uuid.uuid4().hex}", clock=clock, metrics=MetricsRegistry())
    subject = Subject(kind, mode, PARTS[part](clock, state), clock, state)
    yield subject
    subject.close()


WAYS = [("memory", "sync"), ("memory", "async"), ("redis", "sync"), ("redis", "async")]
IDS = ["-".join(way) for way in WAYS]


@pytest.fixture(params=WAYS, ids=IDS)
def breaker(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from subject_for("breaker", request, request.param)


@pytest.fixture(params=WAYS, ids=IDS)
def limiter(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from subject_for("limiter", request, request.param)


@pytest.fixture(params=WAYS, ids=IDS)
def budget(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from subject_for("budget", request, request.param)


@pytest.fixture(
    params=[(part, way) for part in PARTS for way in WAYS], ids=lambda p: f"{p[0]}-{'-'.join(p[1])}"
)
def any_store(request: pytest.FixtureRequest) -> Iterator[tuple[str, Subject]]:
    part, way = request.param
    for subject in subject_for(part, request, way):
        yield part, subject


# -- every store ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_store_implements_its_protocol_with_matching_twins(cls: type) -> None:
    part = next(part for part in PROTOCOLS if part in cls.__name__.lower())
    protocol = PROTOCOLS[part]
    assert cls.__name__ in (f"Memory{part.title()}Store", f"Redis{part.title()}Store")
    for name, member in inspect.getmembers(protocol, inspect.iscoroutinefunction):
        sync = getattr(cls, name[1:])
        fallback = getattr(cls, name)
        assert inspect.iscoroutinefunction(fallback), f"{cls.__name__}.{name} must be async"
        assert list(inspect.signature(sync).parameters) == list(inspect.signature(fallback).parameters), name
        assert list(inspect.signature(member).parameters) == list(inspect.signature(fallback).parameters), (
            name
        )
    for name in ("info", "check", "kind", "shared"):
        assert hasattr(cls, name), f"{cls.__name__} lacks {name}"


def test_info_and_check_describe_the_store(any_store: tuple[str, Subject]) -> None:
    part, subject = any_store
    assert isinstance(subject.store, PROTOCOLS[part])
    info = subject.info()
    assert (info.kind, info.shared, info.available) == (subject.kind, subject.kind == "redis", True)
    assert (subject.store.kind, subject.store.shared) == (info.kind, info.shared)
    assert subject.check().status == "pass"
    assert info.to_dict()["kind"] == subject.kind


# -- breaker -------------------------------------------------------------------------------------------


def test_breaker_admits_when_closed_and_views_an_empty_window(breaker: Subject) -> None:
    admission = breaker.acquire()
    assert admission.permit is not None
    assert admission.permit.lease is None
    assert admission.state is BreakerState.CLOSED
    view = breaker.view()
    assert (view.state, view.calls, view.failures, view.retry_after) == (BreakerState.CLOSED, 0, 0, None)
    assert view.open_duration == BREAKER.open_duration


def test_breaker_trips_refuses_probes_and_closes(breaker: Subject) -> None:
    permit = breaker.acquire().permit
    assert breaker.record(permit, FAILURE) is None
    opened = breaker.record(permit, FAILURE)
    assert opened is not None
    assert opened.what == "opened"
    assert opened.target is BreakerState.OPEN
    assert breaker.known_state is BreakerState.OPEN
    refused = breaker.acquire()
    assert refused.permit is None
    assert refused.state is BreakerState.OPEN
    assert math.isclose(refused.retry_after, 10.0)
    breaker.clock.advance(4.0)
    assert math.isclose(breaker.view().retry_after, 6.0)
    breaker.clock.advance(6.0)
    probe = breaker.acquire()
    assert probe.permit is not None
    assert probe.permit.lease is not None
    assert probe.transition is not None
    assert probe.transition.what == "half_opened"
    busy = breaker.acquire()  # one probe slot, taken
    assert busy.permit is None
    assert busy.state is BreakerState.HALF_OPEN
    assert math.isclose(busy.retry_after, 5.0)
    closed = breaker.record(probe.permit, SUCCESS)
    assert closed is not None
    assert closed.what == "closed"
    assert breaker.view().state is BreakerState.CLOSED


def test_breaker_failed_probe_doubles_the_open_duration(breaker: Subject) -> None:
    permit = breaker.acquire().permit
    breaker.record(permit, FAILURE)
    breaker.record(permit, FAILURE)
    breaker.clock.advance(10.0)
    probe = breaker.acquire().permit
    reopened = breaker.record(probe, FAILURE)
    assert reopened is not None
    assert reopened.what == "opened"
    assert math.isclose(reopened.retry_after, 20.0)
    assert math.isclose(breaker.view().open_duration, 20.0)


def test_breaker_ignores_a_permit_of_an_earlier_period(breaker: Subject) -> None:
    old = breaker.acquire().permit
    breaker.control(BreakerState.FORCED_OPEN)
    breaker.control(BreakerState.CLOSED)
    assert breaker.record(old, FAILURE) is None
    assert breaker.record(old, FAILURE) is None
    assert breaker.view().calls == 0


def test_breaker_release_frees_a_probe_lease_and_records_nothing(breaker: Subject) -> None:
    permit = breaker.acquire().permit
    breaker.record(permit, FAILURE)
    breaker.record(permit, FAILURE)
    breaker.clock.advance(10.0)
    probe = breaker.acquire().permit
    assert breaker.acquire().permit is None
    breaker.release(probe)
    again = breaker.acquire()
    assert again.permit is not None
    assert breaker.view().state is BreakerState.HALF_OPEN


def test_breaker_expired_lease_is_a_failed_probe_and_its_report_is_ignored(breaker: Subject) -> None:
    permit = breaker.acquire().permit
    breaker.record(permit, FAILURE)
    breaker.record(permit, FAILURE)
    breaker.clock.advance(10.0)
    late = breaker.acquire().permit
    breaker.clock.advance(5.0)  # the lease expires: the probe never answered
    reopened = breaker.acquire()
    assert reopened.permit is None
    assert reopened.state is BreakerState.OPEN
    assert reopened.transition is not None
    assert (reopened.transition.what, reopened.transition.source) == ("opened", BreakerState.HALF_OPEN)
    assert reopened.retry_after == pytest.approx(20.0)  # twice the open duration
    assert breaker.record(late, FAILURE) is None
    assert breaker.view().state is BreakerState.OPEN


def test_breaker_controls_reach_every_state(breaker: Subject) -> None:
    reached, transition = breaker.control(BreakerState.FORCED_OPEN)
    assert reached
    assert transition is not None
    assert transition.what == "forced_open"
    assert breaker.acquire().state is BreakerState.FORCED_OPEN
    assert breaker.control(BreakerState.FORCED_OPEN) == (True, None)
    reached, transition = breaker.control(BreakerState.DISABLED)
    assert reached
    assert transition is not None
    assert transition.what == "disabled"
    assert breaker.acquire().permit is NOOP_PERMIT
    reached, transition = breaker.control(BreakerState.CLOSED)
    assert reached
    assert transition is not None
    assert transition.what == "reset"
    assert breaker.view().state is BreakerState.CLOSED


def test_breaker_window_counts_failures_and_slow_calls(breaker: Subject) -> None:
    permit = breaker.acquire().permit
    for code in (SUCCESS, FAILURE, SUCCESS, SLOW, SUCCESS):
        breaker.record(permit, code)
    view = breaker.view()
    assert (view.calls, view.failures, view.slow_calls) == (5, 1, 1)


# -- limiter -------------------------------------------------------------------------------------------


def test_limiter_admits_a_burst_then_refuses_with_retry_after(limiter: Subject) -> None:
    for _ in range(BURST):
        wait, tat = limiter.take("k", 1, 0.0)
        assert wait == 0.0
        assert not math.isnan(tat)
    wait, tat = limiter.take("k", 1, 0.0)
    assert math.isclose(-wait, INTERVAL, rel_tol=1e-6)
    assert math.isnan(tat)
    assert limiter.keys() == ["k"]
    assert limiter.available(["k", "other"]) == [0.0, float(BURST)]


def test_limiter_reserves_a_wait_and_refunds_it(limiter: Subject) -> None:
    for _ in range(BURST):
        limiter.take("k", 1, 0.0)
    wait, tat = limiter.take("k", 1, 1.0)
    assert math.isclose(wait, INTERVAL, rel_tol=1e-6)
    second, _ = limiter.take("k", 1, 1.0)
    assert math.isclose(second, 2 * INTERVAL, rel_tol=1e-6)  # queued behind the first
    limiter.refund("k", 1, tat)  # not the last reservation: nothing moves
    third, last = limiter.take("k", 1, 1.0)
    assert math.isclose(third, 3 * INTERVAL, rel_tol=1e-6)
    limiter.refund("k", 1, last)
    again, _ = limiter.take("k", 1, 1.0)
    assert math.isclose(again, 3 * INTERVAL, rel_tol=1e-6)


def test_limiter_refills_with_time_keys_are_independent_and_reset_refills(limiter: Subject) -> None:
    for _ in range(BURST):
        limiter.take("a", 1, 0.0)
    assert limiter.take("b", 2, 0.0)[0] == 0.0
    limiter.clock.advance(2 * INTERVAL)
    assert [round(v, 6) for v in limiter.available(["a", "b"])] == [2.0, 3.0]
    assert limiter.take("a", 2, 0.0)[0] == 0.0
    assert limiter.take("a", 1, 0.0)[0] < 0
    limiter.reset("a")
    assert limiter.available(["a"]) == [float(BURST)]


# -- budget --------------------------------------------------------------------------------------------


def test_budget_allows_ratio_times_calls_plus_the_minimum(budget: Subject) -> None:
    for _ in range(10):
        budget.record()
    decisions = [budget.try_spend(0.2, 1) for _ in range(4)]
    assert [allowed for allowed, _, _ in decisions] == [True, True, True, False]
    assert decisions[2] == (True, 10, 3)
    assert decisions[3] == (False, 10, 3)
    assert budget.counts() == (10, 3, False)


def test_budget_window_slides(budget: Subject) -> None:
    for _ in range(5):
        budget.record()
    budget.clock.advance(WINDOW / 2)
    budget.record()
    assert budget.counts()[:2] == (6, 0)
    budget.clock.advance(WINDOW / 2)  # the first five calls' bucket left the window
    assert budget.counts()[:2] == (1, 0)
    budget.clock.advance(WINDOW)
    assert budget.counts() == (0, 0, False)
    assert budget.try_spend(0.0, 0) == (False, 0, 0)


# -- outage policy: a shared store never raises on the call path -----------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redis_stores_serve_locally_while_redis_is_down(mode: str) -> None:
    clock = FakeClock(start_monotonic=START, start_time=START)
    state = RedisState(DOWN_URL, clock=clock, metrics=MetricsRegistry(), policy="local")
    stores = {part: Subject("redis", mode, PARTS[part](clock, state), clock, None) for part in PARTS}
    try:
        breaker, limiter, budget = stores["breaker"], stores["limiter"], stores["budget"]
        permit = breaker.acquire().permit
        breaker.record(permit, FAILURE)
        assert breaker.record(permit, FAILURE) is not None  # the fallback trips
        assert breaker.acquire().permit is None
        assert breaker.control(BreakerState.CLOSED)[0] is False  # a control says it did not reach Redis
        assert [limiter.take("k", 1, 0.0)[0] for _ in range(BURST + 1)][-1] < 0
        budget.record()
        assert budget.counts() == (1, 0, True)
        for subject in stores.values():
            assert subject.info().available is False
            assert subject.check().status == "warn"
    finally:
        for subject in stores.values():
            subject.close()
        state.close()
