"""The Redis cache backend when Redis goes away: nothing raises, memory serves, one probe per backoff
interval, health and metrics say so, and everything recovers by itself.

Redis is a real ``redis-server`` the tests start on their own port, kill and restart (tests/_redis_server.py),
or a real listening socket that refuses to speak Redis. Reconnect backoff runs on a FakeClock, so no test
waits for it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from buttress._outage import OutageTracker
from buttress.cache._backend import Entry
from buttress.cache._redis import RedisBackend
from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.events import Event, EventBus
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from tests._ports import free_port
from tests._redis_server import RedisServer


def _wait_until(
    condition: Callable[[], object], seconds: float = 10.0, step: Callable[[], object] = bool
) -> None:
    """Poll ``condition`` (calling ``step`` between polls) until it holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        step()
        time.sleep(0.005)  # polling real threads and a real server, not timing the code under test


class Listener:
    """A real TCP port that accepts connections and counts them, then closes them (or never answers)."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            if self.hang:
                self._held.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def refusing() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


# -- the bookkeeping ----------------------------------------------------------------------------------------


def test_outage_tracker_probes_once_per_interval_doubling_to_the_cap() -> None:
    clock = FakeClock()
    tracker = OutageTracker(clock=clock, reconnect_min=0.5, reconnect_max=2.0)
    assert tracker.available
    assert not tracker.skip()
    before = tracker.epoch

    assert tracker.mark_down(ConnectionError("refused"), before) is True
    assert tracker.last_error == "ConnectionError: refused"
    for _ in range(49):  # the other calls in flight fail too: counted, but no new outage, no backoff step
        assert tracker.mark_down(ConnectionError("reset"), before) is False
    assert tracker.mark_up(before) is None  # nor does a call that succeeded before the outage end it
    delays = []
    for _ in range(5):
        waited = 0.0
        while tracker.skip():  # every call until the next probe is served locally
            clock.advance(0.25)
            waited += 0.25
        delays.append(waited)
        assert tracker.skip() is True  # the probe was claimed by one caller; the others keep skipping
        assert tracker.mark_down(ConnectionError("still refused"), tracker.epoch) is False  # it failed
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert tracker.outage_seconds() == 7.5

    clock.advance(2.0)
    down = tracker.epoch
    assert not tracker.skip()  # the probe
    assert tracker.mark_up(down) == 9.5
    assert tracker.available
    assert tracker.mark_up(down) is None
    assert tracker.mark_down(OSError("failed before the recovery"), down) is False  # stale: still up
    assert tracker.available
    assert tracker.mark_down(OSError("again"), tracker.epoch) is True
    assert tracker.skip()
    clock.advance(0.5)
    assert not tracker.skip()  # a new outage starts again from the shortest delay
    assert tracker.calls.value > 60


@pytest.mark.parametrize(
    ("options", "field"), [({"reconnect_min": 0}, "reconnect_min"), ({"reconnect_max": 0.1}, "reconnect_max")]
)
def test_outage_tracker_validates(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OutageTracker(**options)
    assert caught.value.field == field


# -- a Redis that is not there -------------------------------------------------------------------------


def test_a_dead_redis_costs_one_probe_per_backoff_interval(refusing: Listener) -> None:
    clock = FakeClock()
    backend = RedisBackend(refusing.url, clock=clock, metrics=MetricsRegistry(), reconnect_max=1.0)
    try:
        for i in range(1000):
            backend.set(f"ns:{i}", Entry(i), 60)
            assert backend.get(f"ns:{i}") == Entry(i)  # served from memory, in this process
        assert refusing.accepted == 2  # the first call and its one retry on a broken connection
        assert not backend.available
        assert backend.degraded_calls.value == 2000
        assert backend.acquire_lock("ns:k", "token", 30) is True  # compute locally rather than wait
        assert backend.incr("ns:n", 2, None) == 2
        assert backend.delete(["ns:1", "ns:2", "ns:missing"]) == 2
        assert backend.exists("ns:3")
        assert not backend.exists("ns:1")

        clock.advance(0.49)
        backend.get("ns:1")
        assert refusing.accepted == 2
        clock.advance(0.01)
        backend.get("ns:1")  # the probe, refused again: the next one in 1.0 s
        clock.advance(0.99)
        backend.get("ns:1")
        _wait_until(lambda: refusing.accepted >= 4)
        assert refusing.accepted == 4
        for _ in range(3):  # the delay is capped at reconnect_max
            clock.advance(1.0)
            backend.get("ns:1")
        _wait_until(lambda: refusing.accepted >= 10)
        assert refusing.accepted == 10
    finally:
        backend.close()


async def test_a_dead_redis_costs_async_callers_nothing_either(refusing: Listener) -> None:
    clock = FakeClock()
    backend = RedisBackend(refusing.url, clock=clock, metrics=MetricsRegistry())

    async def caller(i: int) -> None:
        for n in range(20):
            await backend.aset(f"ns:{i}:{n}", Entry(n), 60)
            assert await backend.aget(f"ns:{i}:{n}") == Entry(n)
            assert await backend.aget_many([f"ns:{i}:{n}"]) == [Entry(n)]

    try:
        await asyncio.gather(*(caller(i) for i in range(50)))
        # The 50 first calls were in flight together when the first one failed: each paid once (twice
        # with its retry on a broken connection).
        assert refusing.accepted <= 100
        paid = refusing.accepted
        assert backend.degraded_calls.value == 3000
        await asyncio.gather(*(caller(i) for i in range(50)))
        assert refusing.accepted == paid  # from then on, nothing touches the network
        assert backend.degraded_calls.value == 6000
        assert await backend.aacquire_lock("ns:k", "t", 1) is True
        assert await backend.ainvalidate_tags(["t"]) == 0
        assert await backend.aclear("ns") == 1000
    finally:
        await backend.aclose()


def test_a_hung_redis_costs_one_socket_timeout_then_nothing() -> None:
    hung = Listener(hang=True)
    backend = RedisBackend(hung.url, clock=FakeClock(), socket_timeout=0.1, metrics=MetricsRegistry())
    try:
        started = time.monotonic()
        assert backend.get("ns:k") is None
        first = time.monotonic() - started
        started = time.monotonic()
        for i in range(1000):
            backend.set(f"ns:{i}", Entry(i), 60)
        rest = time.monotonic() - started
        assert first >= 0.1  # it waited for the timeout once...
        assert rest < first * 5  # ...and never again (1,000 calls, each a dict write)
        _wait_until(lambda: hung.accepted >= 1)
        assert hung.accepted == 1
        assert "TimeoutError" in backend.check().output
    finally:
        backend.close()
        hung.close()


# -- a Redis killed under load, and restarted ---------------------------------------------------------------


class Load:
    """4 threads and 50 asyncio tasks setting and reading their own keys until told to stop."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.errors: list[BaseException] = []
        self.sync_ops = 0
        self.async_ops = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._thread, args=(i,)) for i in range(4)]
        self.threads.append(threading.Thread(target=asyncio.run, args=(self._tasks(),)))

    @property
    def ops(self) -> int:
        return self.sync_ops + self.async_ops

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _thread(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            key = f"load:t{worker}:{n % 20}"
            try:
                self.backend.set(key, Entry(n, tags=("load",)), 60)
                entry = self.backend.get(key)
                assert entry is None or isinstance(entry.value, int)
            except BaseException as exc:
                self.errors.append(exc)
                return
            n += 1
            self.sync_ops += 1

    async def _tasks(self) -> None:
        async def task(worker: int) -> None:
            n = 0
            while not self.stop.is_set():
                key = f"load:a{worker}:{n % 20}"
                try:
                    await self.backend.aset(key, Entry(n), 60)
                    entry = await self.backend.aget(key)
                    assert entry is None or isinstance(entry.value, int)
                except BaseException as exc:
                    self.errors.append(exc)
                    return
                n += 1
                self.async_ops += 1
                await asyncio.sleep(0)  # served from memory nothing suspends: let the other tasks run

        await asyncio.gather(*(task(i) for i in range(50)))
        await self.backend.aclose()


def test_killed_and_restarted_under_load_no_caller_sees_an_error(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, free_port())
    server.start()
    clock = FakeClock()
    metrics = MetricsRegistry()
    prefix = f"test:{uuid.uuid4().hex}"
    raw = redis.Redis.from_url(server.url, socket_timeout=2)
    with EventBus() as bus:
        events: list[Event] = []
        bus.subscribe("cache.backend.*", events.append)
        backend = RedisBackend(
            server.url, prefix=prefix, clock=clock, socket_timeout=2.0, metrics=metrics, events=bus
        )  # a generous timeout: 54 callers share one GIL here, and this test is about a dead Redis
        health = HealthRegistry()
        health.add("cache", backend.check, critical=False)
        label = f'backend="{server.url}"'
        try:
            with Load(backend) as load:
                _wait_until(lambda: load.sync_ops > 300 and load.async_ops > 300)
                assert backend.available
                assert raw.exists(backend.redis_key("load:t0:1"), backend.redis_key("load:a0:1")) == 2

                server.stop()  # Redis dies mid-run
                _wait_until(lambda: not backend.available)
                degraded_at = backend.degraded_calls.value
                before = load.ops
                _wait_until(lambda: load.ops > before + 2000)  # memory keeps serving, sync and async
                assert backend.degraded_calls.value > degraded_at + 2000
                backend.set("only:during-outage", Entry("local"), 60)
                assert backend.get("only:during-outage") == Entry("local")
                assert backend.acquire_lock("only:k", "token", 30) is True
                report = health.run_sync()
                assert report.status == "warn"
                assert report.http_status == 200  # a warning, never an outage of its own
                output = report.to_dict()["checks"]["cache"][0]["output"]
                assert "unreachable" in output
                assert "serving from the in-process memory cache" in output
                rendered = metrics.render_prometheus().decode()
                assert f"buttress_cache_backend_degraded{{{label}}} 1.0" in rendered
                assert f"buttress_cache_degraded_calls_total{{{label}}}" in rendered
                info = backend.info()
                assert not info.available
                assert info.entries
                assert "serving from memory" in info.detail

                server.start()  # back, empty, on the same port; the next probe is due in 0.5 s
                _wait_until(lambda: backend.available, step=lambda: clock.advance(0.5))
                bus.flush()
                _wait_until(lambda: len(events) == 2)  # recovered: published after the fallback is emptied
                assert backend.fallback.peek("only:during-outage") is None  # dropped: may be stale elsewhere
                assert backend.get("only:during-outage") is None  # and Redis never had it
                recovered = load.ops
                _wait_until(lambda: load.ops > recovered + 600)
                assert backend.available
                backend.set("after:recovery", Entry("shared"), 60)
                backend.set("after:tagged", Entry(1, tags=("fresh",)), 60)  # Lua scripts reloaded
                assert raw.get(backend.redis_key("after:recovery")) == b'\t\n"shared"'
                _wait_until(
                    lambda: raw.exists(backend.redis_key("load:t0:1"), backend.redis_key("load:a0:1")) == 2
                )
                assert backend.invalidate_tags(["fresh"]) == 1
                assert health.run_sync().status == "pass"
                rendered = metrics.render_prometheus().decode()
                assert f"buttress_cache_backend_degraded{{{label}}} 0.0" in rendered
                total = float(backend.degraded_calls.value)  # no call is degraded now: the count holds still
                assert f"buttress_cache_degraded_calls_total{{{label}}} {total}" in rendered
            assert load.errors == []
        finally:
            backend.close()
            raw.close()
            server.stop()
        bus.flush()
    topics = [event.topic for event in events]
    assert topics == ["cache.backend.degraded", "cache.backend.recovered"]
    degraded, recovered_event = (event.payload for event in events)
    assert degraded["backend"] == server.url
    assert "ConnectionError" in degraded["error"]
    assert recovered_event["outage_seconds"] >= 0.5  # FakeClock time: at least one backoff interval
    assert recovered_event["dropped_local"] > 0


def test_what_changed_during_an_outage_is_dropped_from_redis_when_it_returns(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, free_port())
    server.start()
    clock = FakeClock()
    raw = redis.Redis.from_url(server.url, socket_timeout=2)
    backend = RedisBackend(server.url, prefix="p", clock=clock, metrics=MetricsRegistry())
    try:
        for key in ("ns:deleted", "ns:overwritten", "ns:kept", "gone:1", "gone:2"):
            backend.set(key, Entry(key), None)
        backend.set("ns:tagged", Entry("t", tags=("invalidated",)), None)
        raw.save()  # so the restarted server comes back with these (older) values
        server.stop()

        assert backend.delete(["ns:deleted"]) == 0  # memory had nothing; Redis's copy is now stale
        backend.set("ns:overwritten", Entry("newer"), None)
        backend.invalidate_tags(["invalidated"])
        backend.clear("gone")
        assert not backend.available
        server.start()
        assert raw.exists("p:ns:deleted", "p:ns:overwritten", "p:ns:tagged", "p:gone:1") == 4

        clock.advance(0.5)
        assert backend.get("ns:kept") == Entry("ns:kept")  # the probe: Redis is back
        _wait_until(lambda: raw.exists("p:ns:deleted", "p:ns:overwritten", "p:ns:tagged", "p:gone:1") == 0)
        assert raw.exists("p:gone:2") == 0
        assert backend.get("ns:overwritten") is None  # a miss, rather than the value from before the outage
        assert backend.get("ns:kept") == Entry("ns:kept")
    finally:
        backend.close()
        raw.close()
        server.stop()
