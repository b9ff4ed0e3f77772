"""Three processes share one Redis breaker: when one trips it, the others are refused on their next call."""

from __future__ import annotations

import contextlib
import multiprocessing
import uuid
from typing import Any

import pytest

from buttress.errors import CircuitOpen
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._breaker import BreakerState, CircuitBreaker
from buttress.resilience._redis_state import RedisState

WORKERS = 3
TIMEOUT = 60.0  # generous bound on a queue wait (spawned interpreters import slowly); never a sleep


class Down(Exception):
    pass


def _down() -> None:
    raise Down("upstream is down")


def worker(index: int, url: str, namespace: str, commands: Any, results: Any) -> None:
    """Run commands from the parent against the shared breaker and report each outcome."""
    metrics = MetricsRegistry()
    state = RedisState(url, prefix=namespace, metrics=metrics)
    breaker = CircuitBreaker("shared", consecutive_failures=3, open_duration=60, store=state, metrics=metrics)
    try:
        results.put((index, "ready", None))
        while (command := commands.get(timeout=TIMEOUT)) != "stop":
            if command == "call":
                try:
                    outcome: tuple[str, Any] = ("ok", breaker.call(lambda: index))
                except CircuitOpen as exc:
                    outcome = ("refused", exc.retry_after)
            else:  # "trip"
                for _ in range(3):
                    with contextlib.suppress(Down):
                        breaker.call(_down)
                outcome = ("tripped", breaker.state.value)
            results.put((index, *outcome))
    finally:
        state.close()


def _collect(results: Any, count: int) -> dict[int, tuple[str, Any]]:
    got: dict[int, tuple[str, Any]] = {}
    for _ in range(count):
        index, kind, value = results.get(timeout=TIMEOUT)
        got[index] = (kind, value)
    return got


def _joined(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=TIMEOUT)
        assert process.exitcode == 0


def _kill_survivors(processes: list[Any]) -> None:
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()


def test_one_process_trips_the_shared_breaker_and_the_others_see_it_open(redis_url: str) -> None:
    namespace = f"procs-{uuid.uuid4().hex}"
    context = multiprocessing.get_context("spawn")
    commands = [context.Queue() for _ in range(WORKERS)]
    results = context.Queue()
    processes = [
        context.Process(target=worker, args=(i, redis_url, namespace, commands[i], results), daemon=True)
        for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    metrics = MetricsRegistry()
    state = RedisState(redis_url, prefix=namespace, metrics=metrics)
    observer = CircuitBreaker("shared", store=state, metrics=metrics)
    try:
        assert {kind for kind, _ in _collect(results, WORKERS).values()} == {"ready"}
        for queue in commands:
            queue.put("call")
        assert _collect(results, WORKERS) == {i: ("ok", i) for i in range(WORKERS)}

        commands[0].put("trip")
        assert _collect(results, 1) == {0: ("tripped", "open")}

        for queue in commands[1:]:
            queue.put("call")
        refused = _collect(results, WORKERS - 1)
        assert set(refused) == {1, 2}
        for kind, retry_after in refused.values():
            assert kind == "refused"
            assert 0 < retry_after <= 60
        assert observer.state is BreakerState.OPEN
        with pytest.raises(CircuitOpen):
            observer.acquire()
        snap = observer.snapshot()
        # worker 0's success was written with its first failure; 1 and 2 batched theirs, which the trip
        # (the end of that CLOSED period) dropped: a batch reaches Redis within sync_interval, or never
        assert (snap.calls, snap.failures, snap.store) == (4, 3, "redis")
        for queue in commands:
            queue.put("stop")
        _joined(processes)
    finally:
        _kill_survivors(processes)
        state.close()


PROBES = 3
PROBERS = 4
START = 1_000_000.0


def _probed(state: RedisState, metrics: MetricsRegistry) -> CircuitBreaker:
    return CircuitBreaker(
        "probed",
        consecutive_failures=1,
        open_duration=1,
        half_open_probes=PROBES,
        store=state,
        metrics=metrics,
    )


def prober(url: str, namespace: str, go: Any, results: Any) -> None:
    """Race the others through one half-open period: every trial call INCRements a counter in Redis."""
    import redis

    from buttress.clock import FakeClock

    metrics = MetricsRegistry()
    clock = FakeClock(start_monotonic=START + 10, start_time=START + 10)  # past the open period
    state = RedisState(url, prefix=namespace, clock=clock, metrics=metrics)
    breaker = _probed(state, metrics)
    upstream = redis.Redis.from_url(url)
    trials = 0
    try:
        results.put("ready")
        go.wait(TIMEOUT)
        for _ in range(200):
            try:
                permit = breaker.acquire()
            except CircuitOpen:
                continue
            if permit.lease is None:
                break  # closed again: calls are no longer trials
            trials += 1
            upstream.incr(f"{namespace}:upstream-calls")  # the trial call reaching the upstream
            breaker.record_success(permit, 0.001)
        results.put(trials)
    finally:
        upstream.close()
        state.close()


def test_processes_racing_a_half_open_period_make_at_most_half_open_probes_trial_calls(
    redis_url: str,
) -> None:
    import redis

    from buttress.clock import FakeClock

    namespace = f"probes-{uuid.uuid4().hex}"
    clock = FakeClock(start_monotonic=START, start_time=START)
    metrics = MetricsRegistry()
    state = RedisState(redis_url, prefix=namespace, clock=clock, metrics=metrics)
    tripper = _probed(state, metrics)
    with contextlib.suppress(Down):
        tripper.call(_down)
    assert tripper.state is BreakerState.OPEN
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=prober, args=(redis_url, namespace, go, results), daemon=True)
        for _ in range(PROBERS)
    ]
    client = redis.Redis.from_url(redis_url)
    try:
        for process in processes:
            process.start()
        assert [results.get(timeout=TIMEOUT) for _ in processes] == ["ready"] * PROBERS
        go.set()
        trials = [results.get(timeout=TIMEOUT) for _ in processes]
        assert sum(trials) == PROBES
        assert int(client.get(f"{namespace}:upstream-calls") or 0) == PROBES
        clock.advance(10)
        assert tripper.state is BreakerState.CLOSED
        _joined(processes)
    finally:
        _kill_survivors(processes)
        client.close()
        state.close()
