"""Memory and Redis in lockstep: hypothesis drives both stores of a part with the same random operations.

One state machine per part (breaker, limiter, budget). Each step applies one operation, or moves the one
FakeClock both stores read, and requires the same answer from both: the memory store is the reference
model and the Redis store's Lua must mirror it step by step. The breaker's machine runs two Redis stores on
separate connections beside the model (two processes sharing one breaker, each with its pushed copy), and
checks that no half-open period admits more than ``half_open_probes`` trial calls.

The clock starts at the same value for monotonic and wall time (RedisState passes wall time into Lua through
``now_arg``), small enough that float seconds stay exact to the microsecond, and moves in steps that are exact
in both representations.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from buttress.clock import FakeClock
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import (
    BreakerConfig,
    BreakerState,
    MemoryBreakerStore,
    MemoryBudgetStore,
    MemoryLimiterStore,
    RedisBreakerStore,
    RedisBudgetStore,
    RedisLimiterStore,
    RedisState,
)
from buttress.resilience._breaker_state import FAILURE, SLOW, SLOW_FAILURE, SUCCESS, Admission, Transition

START = 1_000_000.0
SETTINGS = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
STEPS = st.sampled_from([0.0, 0.125, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
"""Clock moves: exact binary fractions, so float seconds and integer microseconds agree."""


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0.0, abs_tol=1e-6)


class _Lockstep(RuleBasedStateMachine):
    """A FakeClock and a RedisState under a fresh key prefix, shared by the two stores of one machine."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.clock = FakeClock(start_monotonic=START, start_time=START)
        self.state = RedisState(
            url, prefix=f"lockstep-{uuid.uuid4().hex}", clock=self.clock, metrics=MetricsRegistry()
        )

    @rule(seconds=STEPS)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def teardown(self) -> None:
        self.state.close()


# -- breaker -------------------------------------------------------------------------------------------

CONFIGS = [
    BreakerConfig(consecutive_failures=3, open_duration=5.0, open_duration_max=20.0, probe_lease=2.5),
    BreakerConfig(
        consecutive_failures=None,
        failure_rate=0.5,
        slow_call_rate=0.5,
        slow_call_duration=1.0,
        window=6,
        minimum_calls=4,
        open_duration=2.5,
        half_open_probes=2,
        probe_lease=5.0,
    ),
    BreakerConfig(
        consecutive_failures=4,
        failure_rate=0.5,
        window=10.0,
        window_type="time",
        minimum_calls=3,
        open_duration=1.0,
        open_duration_max=4.0,
        half_open_probes=2,
        probe_lease=1.0,
    ),
]


CODES = st.sampled_from([SUCCESS, FAILURE, FAILURE, SLOW, SLOW_FAILURE])
SIDES = st.sampled_from([0, 1])
"""Which of the two Redis stores (two processes' connections to one breaker) a step acts through."""


def _same_transition(mine: Transition | None, theirs: Transition | None) -> None:
    if mine is None or theirs is None:
        assert mine is theirs, (mine, theirs)
        return
    assert (mine.what, mine.source, mine.target) == (theirs.what, theirs.source, theirs.target)
    assert close(mine.failure_rate, theirs.failure_rate), (mine, theirs)
    assert close(mine.retry_after, theirs.retry_after), (mine, theirs)


def _same_admission(mine: Admission, theirs: Admission) -> None:
    assert (mine.permit is None) == (theirs.permit is None), (mine, theirs)
    assert mine.state is theirs.state, (mine, theirs)
    assert close(mine.retry_after, theirs.retry_after), (mine, theirs)
    _same_transition(mine.transition, theirs.transition)
    if mine.permit is not None and theirs.permit is not None:
        assert (mine.permit.lease is None) == (theirs.permit.lease is None)


class BreakerLockstep(_Lockstep):
    """The memory model against two Redis stores on separate connections (two "processes").

    Each step acts through one of them; before it, both feeds settle (every transition published so far
    has reached both copies) and after it the invariant views through the side that acted, which writes
    its batch, so Redis sees the outcomes in the order the model does. Both must give the model's answers:
    the push keeps each copy exact, whichever process made the transition.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.state2 = RedisState(url, prefix=self.state.prefix, clock=self.clock, metrics=MetricsRegistry())

    @initialize(config=st.sampled_from(CONFIGS))
    def build(self, config: BreakerConfig) -> None:
        self.memory = MemoryBreakerStore(config, self.clock.monotonic)
        self.sides = (
            RedisBreakerStore(self.state, "breaker", config),
            RedisBreakerStore(self.state2, "breaker", config),
        )
        self.permits: list[tuple[Any, Any, int]] = []
        self.probes = config.half_open_probes
        self.trials: dict[int, int] = {}  # half-open period (epoch) -> trial calls admitted, not released
        self.unreported: set[int] = set()  # ids of probe permits neither reported nor released

    def _side(self, side: int) -> RedisBreakerStore:
        for state in (self.state, self.state2):
            assert state.breaker_feed().settle(), "a published transition did not arrive"
        self.acted = side
        return self.sides[side]

    def _report(self, mine: Any, *, released: bool) -> None:
        if id(mine) in self.unreported:
            self.unreported.discard(id(mine))
            if released:  # the call did not happen: its trial is given back
                self.trials[mine.epoch] -= 1

    @rule(side=SIDES)
    def acquire(self, side: int) -> None:
        mine, theirs = self.memory.acquire(), self._side(side).acquire()
        _same_admission(mine, theirs)
        if mine.permit is not None:
            self.permits.append((mine.permit, theirs.permit, side))
            if mine.permit.lease is not None:
                self.trials[mine.permit.epoch] = self.trials.get(mine.permit.epoch, 0) + 1
                self.unreported.add(id(mine.permit))

    @rule(times=st.integers(2, 4), side=SIDES)
    def acquire_several(self, times: int, side: int) -> None:
        """Calls in flight at once (several probes of one half-open period)."""
        for _ in range(times):
            self.acquire(side)

    @rule(code=CODES, side=SIDES)
    def call(self, code: int, side: int) -> None:
        """A whole call: acquire, then report its outcome (what drives the breaker through its states)."""
        self.acquire(side)
        if self.permits:
            mine, theirs, side = self.permits[-1]
            self._report(mine, released=False)
            _same_transition(self.memory.record(mine, code), self._side(side).record(theirs, code))

    @rule(data=st.data(), code=CODES)
    def record(self, data: st.DataObject, code: int) -> None:
        """A late report, for any permit handed out so far (stale epochs and expired leases included)."""
        if not self.permits:
            return
        mine, theirs, side = data.draw(st.sampled_from(self.permits))
        self._report(mine, released=False)
        _same_transition(self.memory.record(mine, code), self._side(side).record(theirs, code))

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if not self.permits:
            return
        mine, theirs, side = data.draw(st.sampled_from(self.permits))
        self._report(mine, released=True)
        self.memory.release(mine)
        self._side(side).release(theirs)

    @rule(
        goal=st.sampled_from([BreakerState.CLOSED, BreakerState.FORCED_OPEN, BreakerState.DISABLED]),
        side=SIDES,
    )
    def control(self, goal: BreakerState, side: int) -> None:
        mine, theirs = self.memory.control(goal), self._side(side).control(goal)
        assert mine[0]
        assert theirs[0]
        _same_transition(mine[1], theirs[1])

    @invariant()
    def trial_calls_per_half_open_period_are_bounded(self) -> None:
        """``half_open_probes`` bounds every trial call of a period, finished or in flight."""
        if hasattr(self, "trials"):
            assert all(count <= self.probes for count in self.trials.values()), self.trials

    @invariant()
    def same_view(self) -> None:
        """Through the side that acted last (its view writes its batch; the other side has none, and its
        copy is left to the pushes: viewing it would re-read it)."""
        if not hasattr(self, "memory"):
            return
        mine, theirs = self.memory.view(), self.sides[getattr(self, "acted", 0)].view()
        assert (mine.state, mine.calls, mine.failures, mine.slow_calls) == (
            theirs.state,
            theirs.calls,
            theirs.failures,
            theirs.slow_calls,
        ), (mine, theirs)
        assert close(mine.retry_after, theirs.retry_after), (mine, theirs)
        assert close(mine.open_duration, theirs.open_duration), (mine, theirs)

    def teardown(self) -> None:
        self.state2.close()
        super().teardown()


def test_breaker_stores_agree(redis_url: str) -> None:
    run_state_machine_as_test(lambda: BreakerLockstep(redis_url), settings=SETTINGS)


# -- limiter -------------------------------------------------------------------------------------------

INTERVAL, BURST = 0.125, 3  # 8/s: an interval exact in binary


class LimiterLockstep(_Lockstep):
    @initialize()
    def build(self) -> None:
        self.memory = MemoryLimiterStore(
            interval=INTERVAL, burst=BURST, max_keys=100, now=self.clock.monotonic
        )
        self.redis = RedisLimiterStore(
            self.state, "limiter", interval=INTERVAL, period=1.0, limit=8, burst=BURST, max_keys=100
        )
        self.reservations: list[tuple[str, int, float, float]] = []

    @rule(
        key=st.sampled_from(["a", "b"]),
        cost=st.integers(1, BURST),
        max_wait=st.sampled_from([0.0, 0.125, 0.25, 0.5, 1.0]),
    )
    def take(self, key: str, cost: int, max_wait: float) -> None:
        mine, theirs = self.memory.take(key, cost, max_wait), self.redis.take(key, cost, max_wait)
        assert close(mine[0], theirs[0]), (mine, theirs)
        assert math.isnan(mine[1]) == math.isnan(theirs[1]), (mine, theirs)
        if mine[0] > 0:
            self.reservations.append((key, cost, mine[1], theirs[1]))

    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        if not self.reservations:
            return
        key, cost, mine, theirs = data.draw(st.sampled_from(self.reservations))
        self.memory.refund(key, cost, mine)
        self.redis.refund(key, cost, theirs)

    @rule(key=st.sampled_from(["a", "b"]))
    def reset(self, key: str) -> None:
        self.memory.reset(key)
        self.redis.reset(key)

    @invariant()
    def same_tokens(self) -> None:
        if not hasattr(self, "memory"):
            return
        mine, theirs = self.memory.available(["a", "b"]), self.redis.available(["a", "b"])
        assert all(close(m, t) for m, t in zip(mine, theirs, strict=True)), (mine, theirs)


def test_limiter_stores_agree(redis_url: str) -> None:
    run_state_machine_as_test(lambda: LimiterLockstep(redis_url), settings=SETTINGS)


# -- budget --------------------------------------------------------------------------------------------

BUDGET_STEPS = st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 1.0])


class BudgetLockstep(_Lockstep):
    @initialize()
    def build(self) -> None:
        self.memory = MemoryBudgetStore(1.0, self.clock.monotonic)
        self.redis = RedisBudgetStore(self.state, "budget", 1.0)

    @rule(seconds=BUDGET_STEPS)
    def advance_within_the_window(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(times=st.integers(1, 5))
    def record(self, times: int) -> None:
        for _ in range(times):
            self.memory.record()
            self.redis.record()

    @rule(ratio=st.sampled_from([0.0, 0.2, 0.5, 1.0]), min_retries=st.integers(0, 3))
    def try_spend(self, ratio: float, min_retries: int) -> None:
        mine = self.memory.try_spend(ratio, min_retries)
        theirs = self.redis.try_spend(ratio, min_retries)
        assert mine == theirs

    @invariant()
    def same_counts(self) -> None:
        if hasattr(self, "memory"):
            assert self.memory.counts() == self.redis.counts()


def test_budget_stores_agree(redis_url: str) -> None:
    run_state_machine_as_test(lambda: BudgetLockstep(redis_url), settings=SETTINGS)
