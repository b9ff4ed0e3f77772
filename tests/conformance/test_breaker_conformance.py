"""One suite, two stores: the memory breaker and the Redis breaker must behave identically.

Every test drives a FakeClock; with Redis, RedisState passes the fake time to the Lua scripts, so the
same steps give the same states, counts and retry_after values in both stores.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import BulkheadFull, CircuitOpen, RateLimited
from buttress.events import Event, EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._breaker import BreakerState, CircuitBreaker, Permit
from buttress.resilience._redis_state import RedisState


@dataclass
class Harness:
    kind: str
    clock: FakeClock
    bus: EventBus
    url: str | None
    states: list[RedisState] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def make(self, name: str = "upstream", **options: Any) -> CircuitBreaker:
        options.setdefault("metrics", MetricsRegistry())
        store: Any = "memory"
        if self.url is not None:
            store = RedisState(
                self.url, prefix=f"t-{uuid.uuid4().hex}", clock=self.clock, metrics=MetricsRegistry()
            )
            self.states.append(store)
        return CircuitBreaker(name, store=store, clock=self.clock, events=self.bus, **options)

    def topics(self) -> list[str]:
        self.bus.flush()
        return [
            event.topic.rsplit(".", 1)[1] for event in self.events if not event.topic.endswith("rejected")
        ]


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    bus = EventBus()
    h = Harness(request.param, FakeClock(), bus, url)
    bus.subscribe("resilience.breaker.*", h.events.append)
    yield h
    bus.close()
    for state in h.states:
        await state.aclose()  # the async client of this test's loop, and the sync pool


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("upstream failed")


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(boom)


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        assert breaker.call(lambda: "ok") == "ok"


def refused(breaker: CircuitBreaker) -> CircuitOpen:
    with pytest.raises(CircuitOpen) as info:
        breaker.call(lambda: "never runs")
    return info.value


# -- consecutive failures ----------------------------------------------------------------------------


def test_consecutive_failures_trip_and_a_success_resets_the_count(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=3, open_duration=10, open_duration_max=10)
    fail(breaker, 2)
    succeed(breaker)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    snap = breaker.snapshot()
    assert (snap.state, snap.calls, snap.failures, snap.failure_rate) == ("open", 6, 5, pytest.approx(5 / 6))
    assert snap.retry_after == pytest.approx(10.0)
    assert snap.store == harness.kind
    assert refused(breaker).retry_after == pytest.approx(10.0)
    harness.clock.advance(4)
    error = refused(breaker)
    assert error.retry_after == pytest.approx(6.0)
    assert error.context == {"retry_after": error.retry_after, "breaker": "upstream", "state": "open"}
    assert "is open" in str(error)
    assert breaker.snapshot().retry_after == pytest.approx(6.0)
    assert harness.topics() == ["opened"]


def test_open_turns_half_open_on_the_first_call_after_open_duration(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=5)
    fail(breaker)
    harness.clock.advance(4.999)
    refused(breaker)
    harness.clock.advance(0.001)
    assert breaker.state is BreakerState.OPEN  # lazily: nothing moves until a call asks
    assert breaker.snapshot().retry_after == 0.0
    succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    snap = breaker.snapshot()
    assert (snap.calls, snap.failures, snap.failure_rate, snap.retry_after) == (0, 0, None, None)
    assert harness.topics() == ["opened", "half_opened", "closed"]


# -- failure rate ------------------------------------------------------------------------------------


def test_failure_rate_in_a_count_window_respects_minimum_calls(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=None, failure_rate=0.5, window=10, minimum_calls=6)
    fail(breaker, 4)  # 100% failures, but only 4 calls
    succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    succeed(breaker)  # 6 calls, 4 failures: rules run on failures, not on plain successes
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)  # 7 calls, 5 failures = 0.71
    assert breaker.state is BreakerState.OPEN
    assert harness.topics() == ["opened"]
    harness.bus.flush()
    opened = next(e for e in harness.events if e.topic.endswith("opened"))
    assert opened.payload["failure_rate"] == pytest.approx(5 / 7)
    assert opened.payload["from"] == "closed"
    assert opened.payload["to"] == "open"
    assert opened.payload["retry_after"] == pytest.approx(30.0)


def test_failure_rate_just_below_the_threshold_does_not_trip(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=None, failure_rate=0.5, window=10, minimum_calls=10)
    for _ in range(4):
        succeed(breaker)
        fail(breaker)
    succeed(breaker, 2)
    fail(breaker)  # 11th call: the window holds the last 10 -> 4 failures... plus this one
    snap = breaker.snapshot()
    assert (snap.calls, snap.failures) == (10, 5)
    assert breaker.state is BreakerState.OPEN  # 5/10 = 0.5 >= 0.5


def test_count_window_forgets_calls_that_slid_out(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=None, failure_rate=0.6, window=5, minimum_calls=5)
    fail(breaker, 2)
    succeed(breaker, 3)
    assert (breaker.snapshot().calls, breaker.snapshot().failures) == (5, 2)
    succeed(breaker, 2)  # the two failures slide out
    assert breaker.snapshot().failures == 0
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED  # 2/5
    fail(breaker)  # 3/5 = 0.6
    assert breaker.state is BreakerState.OPEN


def test_failure_rate_in_a_time_window(harness: Harness) -> None:
    breaker = harness.make(
        consecutive_failures=None, failure_rate=0.5, window=10, window_type="time", minimum_calls=4
    )
    fail(breaker, 3)
    harness.clock.advance(5)
    succeed(breaker, 3)
    assert breaker.snapshot().calls == 6
    harness.clock.advance(5)  # the first three failures left the window (10 s ago)
    snap = breaker.snapshot()
    assert (snap.calls, snap.failures) == (3, 0)
    fail(breaker)  # 1/4
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)  # 2/5
    fail(breaker)  # 3/6 = 0.5
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().failures == 3


def test_time_window_drops_old_buckets_one_by_one_and_all_after_a_long_gap(harness: Harness) -> None:
    breaker = harness.make(
        consecutive_failures=None, failure_rate=0.9, window=10, window_type="time", minimum_calls=100
    )
    for _ in range(4):
        fail(breaker)
        harness.clock.advance(3)
    # failures at t=0, 3, 6, 9; now t=12: the window (2, 12] keeps 3, 6, 9
    assert breaker.snapshot().failures == 3
    fail(breaker)
    assert breaker.snapshot().failures == 4
    harness.clock.advance(7)  # t=19: keeps 12
    assert breaker.snapshot().calls == 1
    harness.clock.advance(100)
    assert breaker.snapshot().calls == 0
    fail(breaker)
    assert (breaker.snapshot().calls, breaker.snapshot().failures) == (1, 1)


# -- slow calls --------------------------------------------------------------------------------------


def test_slow_call_rate_counts_slow_successes_and_slow_failures(harness: Harness) -> None:
    breaker = harness.make(
        consecutive_failures=None, slow_call_rate=0.5, slow_call_duration=1.0, window=4, minimum_calls=4
    )
    clock = harness.clock

    def slow_ok() -> str:
        clock.advance(1.5)
        return "slow"

    def slow_boom() -> None:
        clock.advance(2.0)
        raise Boom("slow and failed")

    assert breaker.call(slow_ok) == "slow"
    succeed(breaker, 2)
    assert breaker.state is BreakerState.CLOSED  # 1 slow of 3 calls (below minimum_calls anyway)
    with pytest.raises(Boom):
        breaker.call(slow_boom)  # 2 slow of 4 = 0.5
    assert breaker.state is BreakerState.OPEN
    snap = breaker.snapshot()
    assert snap.slow_call_rate == pytest.approx(0.5)
    assert snap.failure_rate == pytest.approx(0.25)


def test_slow_successes_alone_trip_the_slow_rule(harness: Harness) -> None:
    breaker = harness.make(
        consecutive_failures=None, slow_call_rate=1.0, slow_call_duration=0.5, window=3, minimum_calls=3
    )
    for _ in range(2):
        breaker.record_success(breaker.acquire(), 0.6)
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success(breaker.acquire(), 0.5)  # exactly the threshold is slow
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().failures == 0


def test_a_slow_probe_reopens_when_the_slow_rule_is_on(harness: Harness) -> None:
    breaker = harness.make(
        consecutive_failures=1, slow_call_rate=0.5, slow_call_duration=1.0, open_duration=2
    )
    fail(breaker)
    harness.clock.advance(2)
    breaker.record_success(breaker.acquire(), 3.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().open_duration == pytest.approx(4.0)


def test_a_slow_probe_counts_as_success_without_the_slow_rule(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, slow_call_duration=1.0, open_duration=2)
    fail(breaker)
    harness.clock.advance(2)
    breaker.record_success(breaker.acquire(), 3.0)
    assert breaker.state is BreakerState.CLOSED


# -- open duration growth ----------------------------------------------------------------------------


def test_open_duration_doubles_on_failed_probes_up_to_the_cap_and_resets_on_close(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, open_duration_max=5)
    fail(breaker)
    seen = []
    for _ in range(5):
        duration = breaker.snapshot().open_duration
        seen.append(duration)
        assert refused(breaker).retry_after == pytest.approx(duration)
        harness.clock.advance(duration)
        fail(breaker)  # the probe fails: open again, longer
    assert seen == pytest.approx([1, 2, 4, 5, 5])
    harness.clock.advance(5)
    succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().open_duration == pytest.approx(1)
    fail(breaker)
    assert refused(breaker).retry_after == pytest.approx(1)
    harness.bus.flush()
    reopened = [e.payload["retry_after"] for e in harness.events if e.topic.endswith(".opened")]
    assert reopened == pytest.approx([1, 2, 4, 5, 5, 5, 1])


def test_fixed_open_duration_when_max_equals_it(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=3, open_duration_max=3)
    fail(breaker)
    for _ in range(3):
        harness.clock.advance(3)
        fail(breaker)
        assert refused(breaker).retry_after == pytest.approx(3)


# -- half-open probes --------------------------------------------------------------------------------


def test_exactly_n_concurrent_probes_from_threads(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, half_open_probes=3, probe_lease=20)
    fail(breaker)
    harness.clock.advance(1)
    barrier = threading.Barrier(8)
    permits: list[object] = []
    refusals: list[CircuitOpen] = []
    lock = threading.Lock()

    def probe() -> None:
        barrier.wait()
        try:
            permit = breaker.acquire()
        except CircuitOpen as exc:
            with lock:
                refusals.append(exc)
        else:
            with lock:
                permits.append(permit)

    threads = [threading.Thread(target=probe) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(permits), len(refusals)) == (3, 5)
    assert breaker.state is BreakerState.HALF_OPEN
    assert all(r.retry_after == pytest.approx(20) for r in refusals)  # until the first lease expires
    assert "probe slot" in str(refusals[0])
    harness.clock.advance(5)
    assert refused(breaker).retry_after == pytest.approx(15)
    assert breaker.snapshot().retry_after == pytest.approx(15)
    breaker.record_success(permits[0], 0.01)  # type: ignore[arg-type]
    assert refused(breaker).retry_after == pytest.approx(15)  # a finished probe frees no slot
    assert breaker.snapshot().retry_after == pytest.approx(15)
    breaker.record_success(permits[1], 0.01)  # type: ignore[arg-type]
    assert breaker.state is BreakerState.HALF_OPEN  # 2 of the 3 successes needed
    breaker.record_success(permits[2], 0.01)  # type: ignore[arg-type]
    assert breaker.state is BreakerState.CLOSED
    assert harness.topics() == ["opened", "half_opened", "closed"]


def test_half_open_probes_bounds_the_trial_calls_of_a_period_not_those_in_flight(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, half_open_probes=3, probe_lease=20)
    fail(breaker)
    harness.clock.advance(1)
    first, second, third = breaker.acquire(), breaker.acquire(), breaker.acquire()
    breaker.record_success(first, 0.1)
    refused(breaker)  # 3 trial calls were admitted in this period: no 4th, even with one finished
    breaker.record_success(second, 0.1)
    refused(breaker)
    breaker.record_success(third, 0.1)
    assert breaker.state is BreakerState.CLOSED
    succeed(breaker)


def test_a_released_probe_gives_its_trial_back(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, half_open_probes=2, probe_lease=20)
    fail(breaker)
    harness.clock.advance(1)
    first, second = breaker.acquire(), breaker.acquire()
    breaker.release(first)  # the call never happened: its trial is not spent
    third = breaker.acquire()
    refused(breaker)
    breaker.record_success(second, 0.1)
    breaker.record_success(third, 0.1)
    assert breaker.state is BreakerState.CLOSED


def _race_trials(breaker: CircuitBreaker, workers: int, attempts: int) -> list[Permit]:
    """Threads acquire and report until one gets a CLOSED permit; returns the probe permits admitted."""
    barrier = threading.Barrier(workers)
    trials: list[Permit] = []
    lock = threading.Lock()

    def work() -> None:
        read, write = os.pipe()  # the "upstream call": a real system call, which lets other threads run
        try:
            barrier.wait()
            for _ in range(attempts):
                try:
                    permit = breaker.acquire()
                except CircuitOpen:
                    continue
                if permit.lease is None:
                    return  # closed again: no longer a trial call
                with lock:
                    trials.append(permit)
                os.write(write, b"x")
                os.read(read, 1)
                breaker.record_success(permit, 0.01)
        finally:
            os.close(read)
            os.close(write)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return trials


def test_racing_threads_make_at_most_half_open_probes_trial_calls(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, half_open_probes=3, probe_lease=20)
    for _ in range(5):  # five half-open periods, each raced by 8 threads
        fail(breaker)
        assert breaker.state is BreakerState.OPEN
        harness.clock.advance(1)
        trials = _race_trials(breaker, workers=8, attempts=60)
        assert len(trials) == 3
        assert breaker.state is BreakerState.CLOSED


async def test_racing_tasks_make_at_most_half_open_probes_trial_calls(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, half_open_probes=3, probe_lease=20)
    fail(breaker)
    harness.clock.advance(1)
    trials: list[Permit] = []

    async def work() -> None:
        for _ in range(60):
            try:
                permit = await breaker.aacquire()
            except CircuitOpen:
                await asyncio.sleep(0)
                continue
            if permit.lease is None:
                return
            trials.append(permit)
            await asyncio.sleep(0)  # the upstream call: others run meanwhile
            await breaker.arecord_success(permit, 0.01)

    await asyncio.gather(*(work() for _ in range(8)))
    assert len(trials) == 3
    assert (await breaker.asnapshot()).state == "closed"


def test_one_failed_probe_reopens_even_after_successes(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, half_open_probes=3)
    fail(breaker)
    harness.clock.advance(1)
    first, second, third = breaker.acquire(), breaker.acquire(), breaker.acquire()
    breaker.record_success(first, 0.1)
    breaker.record_success(second, 0.1)
    breaker.record_failure(third, Boom("still down"), 0.1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().open_duration == pytest.approx(2)


def test_a_probe_that_never_reports_reopens_the_breaker_when_its_lease_expires(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, open_duration_max=8, probe_lease=10)
    fail(breaker)
    harness.clock.advance(1)
    lost = breaker.acquire()  # a process that died mid-probe: the permit is never reported
    assert refused(breaker).retry_after == pytest.approx(10)
    harness.clock.advance(9.999)
    refused(breaker)
    harness.clock.advance(0.001)
    error = refused(breaker)  # the lease ran out: a probe that never answered is a failed probe
    assert "is open" in str(error)
    assert error.retry_after == pytest.approx(2)  # open again, for twice as long
    assert breaker.state is BreakerState.OPEN
    breaker.record_success(lost, 0.1)  # a late report for the expired lease changes nothing
    assert breaker.state is BreakerState.OPEN
    harness.clock.advance(2)
    probe = breaker.acquire()  # a new half-open period, with its own trial calls
    breaker.record_failure(lost, Boom("late"), 0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(probe, 0.1)
    assert breaker.state is BreakerState.CLOSED
    assert harness.topics() == ["opened", "half_opened", "opened", "half_opened", "closed"]


def test_an_expired_lease_reopens_on_a_report_too(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, half_open_probes=2, probe_lease=10)
    fail(breaker)
    harness.clock.advance(1)
    lost = breaker.acquire()
    harness.clock.advance(5)
    late = breaker.acquire()
    harness.clock.advance(5)  # `lost` expired; `late` has 5 s to go
    breaker.record_success(late, 0.1)  # the breaker decides first: a probe never answered
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().open_duration == pytest.approx(2)
    del lost


def test_release_frees_a_probe_slot_and_records_nothing(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1)
    fail(breaker)
    harness.clock.advance(1)
    permit = breaker.acquire()
    refused(breaker)
    breaker.release(permit)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.release(permit)  # twice is harmless
    succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


async def test_a_cancelled_async_probe_releases_its_slot(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, probe_lease=60)
    fail(breaker)
    harness.clock.advance(1)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.acall(hang))
    await started.wait()
    with pytest.raises(CircuitOpen):
        await breaker.acall(asyncio.sleep, 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await breaker.acall(asyncio.sleep, 0, "probed") == "probed"
    assert (await breaker.asnapshot()).state == "closed"


async def test_async_calls_trip_and_recover(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=2, open_duration=1)

    async def aboom() -> None:
        raise Boom("async")

    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.acall(aboom)
    with pytest.raises(CircuitOpen):
        await breaker.acall(aboom)
    assert (await breaker.asnapshot()).state == "open"
    harness.clock.advance(1)
    async with breaker.guard():
        pass
    assert (await breaker.asnapshot()).state == "closed"


def test_a_report_from_an_earlier_closed_period_is_ignored(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=2, open_duration=1)
    stale = breaker.acquire()
    fail(breaker, 2)
    harness.clock.advance(1)
    succeed(breaker)  # closed again: a new period
    fail(breaker)
    breaker.record_failure(stale, Boom("old news"), 0.1)  # would be the 2nd consecutive failure
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().calls == 1


# -- manual control ----------------------------------------------------------------------------------


def test_isolate_refuses_until_reset(harness: Harness) -> None:
    breaker = harness.make(open_duration=7)
    fail(breaker, 2)
    breaker.isolate()
    breaker.isolate()  # already isolated: no second event
    assert breaker.state is BreakerState.FORCED_OPEN
    error = refused(breaker)
    assert error.retry_after == pytest.approx(7)
    assert "reset()" in str(error)
    assert breaker.snapshot().retry_after is None
    harness.clock.advance(1000)
    refused(breaker)
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().calls == 0
    assert harness.topics() == ["forced_open", "reset"]


def test_disable_admits_everything_and_records_nothing(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1)
    breaker.disable()
    fail(breaker, 5)
    succeed(breaker)
    assert breaker.state is BreakerState.DISABLED
    assert breaker.snapshot().calls == 0
    breaker.reset()
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    breaker.disable()
    succeed(breaker)
    assert harness.topics() == ["disabled", "reset", "opened", "disabled"]
    harness.bus.flush()
    disabled = [e.payload for e in harness.events if e.topic.endswith("disabled")][-1]
    assert disabled == {
        "key": "upstream",
        "from": "open",
        "to": "disabled",
        "failure_rate": None,
        "retry_after": None,
    }


def test_reset_while_open_clears_state_and_open_duration(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, open_duration_max=8)
    fail(breaker)
    harness.clock.advance(1)
    fail(breaker)
    assert breaker.snapshot().open_duration == pytest.approx(2)
    breaker.reset()
    snap = breaker.snapshot()
    assert (snap.state, snap.open_duration, snap.calls) == ("closed", pytest.approx(1), 0)


async def test_async_controls(harness: Harness) -> None:
    breaker = harness.make()
    await breaker.aisolate()
    assert (await breaker.asnapshot()).state == "forced_open"
    with pytest.raises(CircuitOpen):
        await breaker.acall(asyncio.sleep, 0)
    await breaker.adisable()
    assert (await breaker.asnapshot()).state == "disabled"
    await breaker.areset()
    assert (await breaker.asnapshot()).state == "closed"


# -- what counts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rejection", [CircuitOpen("inner", retry_after=1), RateLimited("rl", retry_after=1), BulkheadFull("full")]
)
def test_rejections_raised_by_the_call_are_ignored(harness: Harness, rejection: Exception) -> None:
    breaker = harness.make(consecutive_failures=1)

    def refuse() -> None:
        raise rejection

    with pytest.raises(type(rejection)):
        breaker.call(refuse)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().calls == 0
    assert breaker.telemetry.counts()["ignored"] == 1


def test_ignore_and_record_filters(harness: Harness) -> None:
    breaker = harness.make(
        consecutive_failures=2,
        record=(Boom, ConnectionError),
        ignore=lambda exc: isinstance(exc, ConnectionError) and "ignore me" in str(exc),
    )

    def raise_(exc: Exception) -> None:
        raise exc

    with pytest.raises(KeyError):
        breaker.call(raise_, KeyError("not recorded: a success"))
    with pytest.raises(ConnectionError):
        breaker.call(raise_, ConnectionError("ignore me"))
    snap = breaker.snapshot()
    assert (snap.calls, snap.failures) == (1, 0)
    fail(breaker)
    with pytest.raises(KeyError):
        breaker.call(raise_, KeyError("resets the consecutive count"))
    fail(breaker)
    assert breaker.state is BreakerState.CLOSED
    with pytest.raises(ConnectionError):
        breaker.call(raise_, ConnectionError("refused"))
    assert breaker.state is BreakerState.OPEN
    assert breaker.telemetry.counts() == {
        "success": 2,
        "failure": 3,
        "rejected": 0,
        "ignored": 1,
        "slow": 0,
    }


def test_an_ignored_probe_releases_its_lease(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1, ignore=KeyError)
    fail(breaker)
    harness.clock.advance(1)

    def missing() -> None:
        raise KeyError("ignored")

    with pytest.raises(KeyError):
        breaker.call(missing)
    assert breaker.state is BreakerState.HALF_OPEN
    succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


def test_guard_records_success_failure_and_release(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=2)
    with breaker.guard():
        pass
    with pytest.raises(Boom), breaker.guard():
        raise Boom("in a block")
    with pytest.raises(KeyboardInterrupt), breaker.guard():
        raise KeyboardInterrupt  # did not finish: released, not counted
    snap = breaker.snapshot()
    assert (snap.calls, snap.failures) == (2, 1)
    counts = breaker.telemetry.counts()
    assert (counts["success"], counts["failure"], counts["ignored"]) == (1, 1, 1)


def test_rejections_are_counted_and_published(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=3)
    fail(breaker)
    refused(breaker)
    refused(breaker)
    assert breaker.telemetry.counts()["rejected"] == 2
    harness.bus.flush()
    rejected = [e.payload for e in harness.events if e.topic == "resilience.breaker.rejected"]
    assert rejected == [{"key": "upstream", "state": "open", "retry_after": pytest.approx(3)}] * 2


def test_a_probe_reported_after_a_reset_is_ignored(harness: Harness) -> None:
    breaker = harness.make(consecutive_failures=1, open_duration=1)
    fail(breaker)
    harness.clock.advance(1)
    probe, other = breaker.acquire(), None
    breaker.reset()
    breaker.record_failure(probe, Boom("from before the reset"), 0.1)
    breaker.release(probe)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().calls == 0
    fail(breaker)
    harness.clock.advance(1)
    other = breaker.acquire()
    breaker.release(probe)  # an old lease id from another epoch frees nothing
    refused(breaker)
    breaker.record_success(other, 0.1)
    assert breaker.state is BreakerState.CLOSED


async def test_async_reports_classify_like_sync_ones(harness: Harness) -> None:
    clock = harness.clock
    breaker = harness.make(consecutive_failures=2, slow_call_duration=1.0, ignore=KeyError)

    async def slow_ok() -> str:
        clock.advance(1.0)
        return "slow"

    async def slow_boom() -> None:
        clock.advance(1.0)
        raise Boom("slow failure")

    async def missing() -> None:
        raise KeyError("ignored")

    async def not_recorded() -> None:
        raise asyncio.InvalidStateError("counts as success")

    assert await breaker.acall(slow_ok) == "slow"
    with pytest.raises(KeyError):
        await breaker.acall(missing)
    with pytest.raises(Boom):
        await breaker.acall(slow_boom)
    breaker_strict = harness.make("strict", record=Boom)
    with pytest.raises(asyncio.InvalidStateError):
        await breaker_strict.acall(not_recorded)
    snap = await breaker.asnapshot()
    assert (snap.calls, snap.failures, snap.slow_call_rate) == (2, 1, 1.0)
    assert breaker.telemetry.counts() == {"success": 1, "failure": 1, "rejected": 0, "ignored": 1, "slow": 2}
    assert breaker_strict.telemetry.counts()["success"] == 1
    assert (await breaker_strict.asnapshot()).failures == 0


def test_the_state_gauge_follows_the_store(harness: Harness) -> None:
    metrics = MetricsRegistry()
    breaker = harness.make(consecutive_failures=1, metrics=metrics)
    fail(breaker)
    text = metrics.render_prometheus().decode()
    assert 'buttress_resilience_breaker_state{key="upstream",state="open"} 1.0' in text
    assert 'buttress_resilience_breaker_state{key="upstream",state="closed"} 0.0' in text
