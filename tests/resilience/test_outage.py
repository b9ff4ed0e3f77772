"""Redis killed in the middle of a run: the local policy keeps serving, health warns, and state recovers."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import redis

from buttress.errors import CircuitOpen, RateLimited
from buttress.events import EventBus
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import CircuitBreaker, Pipeline, RateLimiter, RedisState, Retry, RetryBudget
from tests._redis_server import RedisServer


def _wait_until(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)  # polling a real server's recovery, not timing the code under test


def _fail() -> None:
    raise ConnectionError("upstream down")


def test_local_policy_serves_through_a_redis_outage_and_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    metrics = MetricsRegistry()
    with EventBus() as bus:
        topics: list[str] = []
        bus.subscribe("resilience.store.*", lambda event: topics.append(event.topic))
        state = RedisState(
            server.url, policy="local", reconnect_min=0.05, reconnect_max=0.2, metrics=metrics, events=bus
        )
        health = HealthRegistry()
        health.add("resilience_store", state.check, critical=False)
        breaker = CircuitBreaker("outage", store=state, metrics=metrics, events=bus)
        limiter = RateLimiter(
            "1000000/s", burst=100_000, name="outage", store=state, metrics=metrics, events=bus
        )
        budget = RetryBudget(name="outage", store=state, metrics=metrics, events=bus)
        pipeline = Pipeline(
            "outage",
            retry=Retry(on=ConnectionError, budget=budget, metrics=metrics, events=bus),
            breaker=breaker,
            limiter=limiter,
        )
        errors: list[BaseException] = []
        served = [0]
        stop = threading.Event()

        def worker() -> None:
            while not stop.is_set():
                try:
                    assert pipeline.call(lambda: "ok") == "ok"
                    served[0] += 1
                except (CircuitOpen, RateLimited, AssertionError) as exc:  # what an outage must never cause
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            _wait_until(lambda: served[0] > 200)
            server.stop()  # Redis dies mid-run
            _wait_until(lambda: not state.available)
            before = served[0]
            _wait_until(lambda: served[0] > before + 500)  # the local policy keeps serving
            report = health.run_sync()
            assert report.status == "warn"
            assert report.http_status == 200  # a warning, never an outage of its own
            assert "policy 'local'" in report.to_dict()["checks"]["resilience_store"][0]["output"]
            assert 'buttress_resilience_store_degraded{policy="local"' in metrics.render_prometheus().decode()
            server.start()  # Redis is back, empty
            _wait_until(lambda: state.available)
            recovered = served[0]
            _wait_until(lambda: served[0] > recovered + 200)
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
        assert errors == []
        assert health.run_sync().status == "pass"
        for _ in range(5):  # trip the breaker now that Redis is back: the trip must be shared again
            with contextlib.suppress(ConnectionError):
                breaker.call(_fail)
        other_process = RedisState(server.url, metrics=MetricsRegistry())
        try:
            assert CircuitBreaker("outage", store=other_process, metrics=metrics).state == "open"
            client = redis.Redis.from_url(server.url)
            assert any(key.startswith(b"buttress:limiter:outage") for key in client.keys("buttress:*"))
            client.close()
        finally:
            other_process.close()
            state.close()
            server.stop()
        bus.flush()
    assert topics[:2] == ["resilience.store.degraded", "resilience.store.recovered"]
