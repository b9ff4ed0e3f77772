"""Tally, Telemetry and RedisState: the plumbing every strategy shares."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pytest

from buttress._tally import Tally
from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import UNAVAILABLE, RedisState
from buttress.resilience._decorate import check_name, wrap
from buttress.resilience._redis_state import LUA_NOW, Script, check_policy
from buttress.resilience._telemetry import Telemetry
from tests._ports import free_port
from tests._redis_server import RedisServer


def test_tally_loses_no_increment_under_threads() -> None:
    tally = Tally()
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(20_000):
            tally.add()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tally.value == 160_000
    assert repr(tally) == "Tally(160000)"


def test_telemetry_exports_deltas_at_scrape_and_never_twice() -> None:
    metrics = MetricsRegistry()
    telemetry = Telemetry("breaker", "api.example.com", ("success", "failure"), metrics=metrics)
    success = telemetry.tally("success")
    for _ in range(3):
        success()
    text = metrics.render_prometheus().decode()
    line = 'buttress_resilience_calls_total{key="api.example.com",outcome="success",strategy="breaker"} 3.0'
    assert line in text
    assert 'outcome="failure"' not in text  # nothing counted, no series
    metrics.render_prometheus()  # a second scrape exports no delta again
    success()
    snapshot = metrics.snapshot()["buttress_resilience_calls_total"]
    assert telemetry.counts() == {"success": 4, "failure": 0}
    assert any(row["value"] == 4.0 for row in snapshot["series"]), snapshot
    assert repr(telemetry) == "Telemetry('breaker', 'api.example.com')"


def test_telemetry_gauges_and_waits() -> None:
    metrics = MetricsRegistry()
    telemetry = Telemetry("limiter", "k", ("admitted",), metrics=metrics)
    seen: list[MetricsRegistry] = []
    telemetry.on_collect(seen.append)
    telemetry.observe_wait(0.02)
    text = metrics.render_prometheus().decode()
    assert seen == [metrics]
    assert 'buttress_resilience_wait_seconds_count{key="k",strategy="limiter"} 1.0' in text


def test_telemetry_events_and_a_broken_bus_never_raises() -> None:
    with EventBus() as bus:
        got: list[tuple[str, dict[str, object]]] = []
        bus.subscribe("resilience.**", lambda event: got.append((event.topic, dict(event.payload))))
        telemetry = Telemetry("breaker", "k", (), metrics=MetricsRegistry(), events=bus)
        telemetry.emit("opened", failure_rate=0.5)
        bus.flush()
    assert got == [("resilience.breaker.opened", {"key": "k", "failure_rate": 0.5})]
    telemetry.emit("opened")  # the bus is closed now: swallowed, the call it observes goes on


def test_a_failing_collect_hook_does_not_hide_the_other_metrics(caplog: pytest.LogCaptureFixture) -> None:
    metrics = MetricsRegistry()

    def broken(registry: MetricsRegistry) -> None:
        raise RuntimeError("boom")

    metrics.add_collect_hook(broken)
    metrics.counter("buttress_test_things_total", "Things.").inc()
    assert b"buttress_test_things_total 1.0" in metrics.render_prometheus()
    assert "metrics collect hook" in caplog.text
    metrics.remove_collect_hook(broken)
    metrics.remove_collect_hook(broken)  # removing twice is harmless
    caplog.clear()
    metrics.snapshot()
    assert "metrics collect hook" not in caplog.text


def test_names_and_policies_are_validated() -> None:
    assert check_name("api.example.com") == "api.example.com"
    host_key = "http:" + ".".join(["a" * 63] * 3 + ["b" * 61]) + ".:65535"  # a 253-character DNS name
    assert check_name(host_key) == host_key
    for bad in ("", "a b", 3, "x" * 301):
        with pytest.raises(ValidationError, match=r"e\.g\. 'api\.example\.com'"):
            check_name(bad, "key")
    assert check_policy("closed") == "closed"
    with pytest.raises(ValidationError, match="policy must be one of local, open, closed"):
        check_policy("fail")
    with pytest.raises(ValidationError, match="needs a function"):
        wrap(3, print, print)  # type: ignore[arg-type]


async def test_wrap_keeps_sync_and_async_functions_apart() -> None:
    calls: list[str] = []

    def call(fn: object, *args: object, **kwargs: object) -> object:
        calls.append("sync")
        return fn(*args, **kwargs)  # type: ignore[operator]

    async def acall(fn: object, *args: object, **kwargs: object) -> object:
        calls.append("async")
        return await fn(*args, **kwargs)  # type: ignore[operator]

    def add(a: int, b: int = 1) -> int:
        return a + b

    async def aadd(a: int, b: int = 1) -> int:
        return a + b

    assert wrap(add, call, acall)(1, b=2) == 3
    assert await wrap(aadd, call, acall)(1) == 2
    assert calls == ["sync", "async"]
    assert wrap(add, call, acall).__name__ == "add"


# -- RedisState against real servers ------------------------------------------------------------------

_ECHO_NOW = Script(LUA_NOW + "redis.call('SET', KEYS[1], fmt(now), 'PX', 60000) return fmt(now)")


def test_redis_state_validates_its_arguments(redis_url: str) -> None:
    with pytest.raises(
        ValidationError,
        match="must be a redis://, rediss://, unix://, redis\\+sentinel:// or redis\\+cluster:// URL",
    ):
        RedisState("http://x")
    with pytest.raises(ValidationError, match="prefix"):
        RedisState(redis_url, prefix="a b")
    with pytest.raises(ValidationError, match="policy"):
        RedisState(redis_url, policy="maybe")  # type: ignore[arg-type]


def test_scripts_use_redis_time_or_the_injected_clock(redis_url: str) -> None:
    key = f"test:{uuid.uuid4().hex}"
    state = RedisState(redis_url, metrics=MetricsRegistry())
    try:
        server_now = int(state.run(_ECHO_NOW, [key], [state.now_arg()]))
        seconds, micros = state.client().time()
        assert abs(server_now - (seconds * 1_000_000 + micros)) < 5_000_000
        state.client().script_flush()  # NOSCRIPT path: the script is loaded again on the next call
        fake = RedisState(redis_url, clock=FakeClock(start_time=1_000.25), metrics=MetricsRegistry())
        assert fake.run(_ECHO_NOW, [key], [fake.now_arg()]) == str(round(fake.clock.time() * 1e6)).encode()
        assert state.key("breaker", "api") == "buttress:{breaker:api}"
        assert "available" in repr(state)
        fake.close()
    finally:
        state.close()


async def test_async_scripts_run_on_the_loop_client(redis_url: str) -> None:
    key = f"test:{uuid.uuid4().hex}"
    state = RedisState(redis_url, metrics=MetricsRegistry())
    await state.async_client().script_flush()
    first = await state.arun(_ECHO_NOW, [key], [state.now_arg()])
    assert int(first) > 0
    assert state.async_client() is state.async_client()
    await state.aclose()


def test_an_unreachable_redis_follows_the_policy_probes_with_backoff_and_recovers(tmp_path: Path) -> None:
    clock = FakeClock()
    metrics = MetricsRegistry()
    with EventBus() as bus:
        topics: list[str] = []
        bus.subscribe("resilience.store.*", lambda event: topics.append(event.topic))
        server = RedisServer(tmp_path, port=free_port())
        state = RedisState(server.url, clock=clock, metrics=metrics, events=bus, policy="closed")
        key = f"test:{uuid.uuid4().hex}"
        assert state.run(_ECHO_NOW, [key], [state.now_arg()]) is UNAVAILABLE  # nothing listens yet
        assert not state.available
        check = state.check()
        assert check.status == "warn"
        assert "policy 'closed': every call is rejected" in check.output
        assert "degraded" in repr(state)
        # inside the backoff window no call touches the network
        server.start()
        try:
            assert state.run(_ECHO_NOW, [key], [state.now_arg()]) is UNAVAILABLE
            text = metrics.render_prometheus().decode()
            assert 'buttress_resilience_store_degraded{policy="closed",store="' in text
            assert "buttress_resilience_store_policy_calls_total" in text
            clock.advance(0.6)  # past the first backoff: one probe goes out and finds Redis back
            assert state.run(_ECHO_NOW, [key], [state.now_arg()]) not in (None, UNAVAILABLE)
            assert state.available
            assert state.check().status == "pass"
            server.stop()
            assert state.run(_ECHO_NOW, [key], [state.now_arg()]) is UNAVAILABLE
            clock.advance(0.6)
            assert state.run(_ECHO_NOW, [key], [state.now_arg()]) is UNAVAILABLE  # probe fails: 1 s backoff
            clock.advance(0.6)
            assert state.run(_ECHO_NOW, [key], [state.now_arg()]) is UNAVAILABLE  # still inside 1 s
        finally:
            server.stop()
            state.close()
        bus.flush()
    assert topics == ["resilience.store.degraded", "resilience.store.recovered", "resilience.store.degraded"]


async def test_async_callers_see_the_outage_too() -> None:
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0", metrics=MetricsRegistry(), clock=FakeClock())
    assert await state.arun(_ECHO_NOW, ["k"], [state.now_arg()]) is UNAVAILABLE
    assert await state.arun(_ECHO_NOW, ["k"], [state.now_arg()]) is UNAVAILABLE
    await state.aclose()
    assert asyncio.get_running_loop() is not None
