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
        assert (snap.calls, snap.failures, snap.store) == (6, 3, "redis")
        for queue in commands:
            queue.put("stop")
        for process in processes:
            process.join(timeout=TIMEOUT)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        state.close()
