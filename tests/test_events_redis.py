"""The Redis transport: fan-out between buses and processes, bad payloads, outages and recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import redis

from buttress._redis import mask_url
from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.events import (
    Event,
    EventBus,
    RedisTransport,
    create_event_bus,
    get_event_bus,
    reset_event_bus,
)
from buttress.events._wire import backoff_delay

WAIT = 20.0  # upper bound for waits on conditions; tests never sleep
UNREACHABLE = "redis://:s3cret-pw@127.0.0.1:1/0"  # nothing listens on port 1


class Collector:
    """A handler that records events and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.events), timeout)

    def wait_count(self, count: int, timeout: float = WAIT) -> bool:
        return self.wait_for(lambda events: len(events) >= count, timeout)


def transport_of(bus: EventBus) -> RedisTransport:
    return cast(RedisTransport, bus.transport)


def redis_bus(url: str, prefix: str, **options: Any) -> EventBus:
    return EventBus(RedisTransport(url, prefix=prefix, **options))


@pytest.fixture
def prefix() -> str:
    return f"buttress-test:{uuid.uuid4().hex}"


# --- fan-out ------------------------------------------------------------------------------------------


@pytest.mark.redis
def test_two_buses_on_one_redis_share_events_and_ignore_their_own_echo(redis_url: str, prefix: str) -> None:
    with redis_bus(redis_url, prefix) as a, redis_bus(redis_url, prefix) as b:
        assert transport_of(a).wait_connected(WAIT)
        assert transport_of(b).wait_connected(WAIT)
        on_a, on_b = Collector(), Collector()
        a.subscribe("**", on_a)
        b.subscribe("orders.*", on_b)

        for i in range(50):
            a.publish("orders.created", {"i": i})
        a.publish("users.created", {"i": -1})  # b does not subscribe to this one
        assert a.flush(WAIT)
        assert on_b.wait_count(50)
        b.publish("control.ack", {"seen": len(on_b.events)})
        # The ack reaches a's listener after a's own 51 echoes, which a must have ignored.
        assert on_a.wait_for(lambda events: any(e.topic == "control.ack" for e in events))
        assert a.flush(WAIT)
        assert b.flush(WAIT)

        assert [e.payload["i"] for e in on_b.events] == list(range(50))
        assert {e.origin for e in on_b.events} == {a.id}
        assert [e.topic for e in on_a.events] == ["orders.created"] * 50 + ["users.created", "control.ack"]
        assert on_a.events[-1].payload == {"seen": 50}
        assert a.stats()["received"] == 1
        status = transport_of(a).status()
        assert status["echoes"] == 51  # its own events came back from Redis and were recognised, unparsed
        assert status["received"] == 1
        assert status["sent"] == 51
        assert status["connected"] is True
        assert (status["failed"], status["dropped"], status["outbox"]) == (0, 0, 0)
        remote = on_b.events[0]
        assert (remote.topic, remote.origin) == ("orders.created", a.id)
        assert remote.id.startswith(a.id)


@pytest.mark.redis
async def test_async_subscribers_receive_remote_events_on_their_loop(redis_url: str, prefix: str) -> None:
    loop = asyncio.get_running_loop()
    received: list[tuple[Any, asyncio.AbstractEventLoop]] = []
    done = asyncio.Event()

    async def handler(event: Event) -> None:
        received.append((event.payload["n"], asyncio.get_running_loop()))
        if len(received) == 5:
            done.set()

    a, b = redis_bus(redis_url, prefix), redis_bus(redis_url, prefix)
    try:
        b.subscribe("ticks.*", handler)
        assert await asyncio.to_thread(transport_of(b).wait_connected, WAIT)
        assert await asyncio.to_thread(transport_of(a).wait_connected, WAIT)
        for n in range(5):
            a.publish("ticks.tock", {"n": n})
        await asyncio.wait_for(done.wait(), WAIT)
        assert received == [(n, loop) for n in range(5)]
    finally:
        await a.aclose()
        await b.aclose()


def _subscriber_process(url: str, prefix: str, count: int, ready: Any, results: Any) -> None:
    """Process B: subscribe, say it is ready, collect ``count`` events, acknowledge and report them."""
    collector = Collector()
    bus = redis_bus(url, prefix)
    try:
        bus.subscribe("orders.**", collector)
        if not transport_of(bus).wait_connected(WAIT):
            results.put(("error", transport_of(bus).status()))
            return
        ready.set()
        collector.wait_count(count, WAIT)
        bus.publish("control.ack", {"received": len(collector.events)})
        bus.flush(WAIT)
        results.put(("ok", [(e.topic, dict(e.payload), e.origin) for e in collector.events]))
    finally:
        bus.close()


@pytest.mark.redis
def test_events_reach_another_process_exactly_once(redis_url: str, prefix: str) -> None:
    count = 40
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    results = context.Queue()
    process = context.Process(target=_subscriber_process, args=(redis_url, prefix, count, ready, results))
    process.start()
    try:
        with redis_bus(redis_url, prefix) as a:
            mine = Collector()
            a.subscribe("**", mine)
            assert transport_of(a).wait_connected(WAIT)
            assert ready.wait(60), "the subscriber process did not get ready"
            sent = [{"i": i, "name": f"order-{i}", "tags": ["a"], "total": i * 1.5} for i in range(count)]
            for payload in sent:
                a.publish("orders.created", payload)
            assert a.flush(WAIT)

            outcome, received = results.get(timeout=60)
            assert outcome == "ok", received
            assert [payload for (_, payload, _) in received] == sent
            assert {(topic, origin) for (topic, _, origin) in received} == {("orders.created", a.id)}

            # B's ack comes after A's own echoes on A's listener: A delivered each of its events once.
            assert mine.wait_for(lambda events: any(e.topic == "control.ack" for e in events))
            assert a.flush(WAIT)
            assert [e.topic for e in mine.events] == ["orders.created"] * count + ["control.ack"]
            assert [dict(e.payload) for e in mine.events[:count]] == sent
            assert mine.events[-1].payload == {"received": count}
            assert mine.events[-1].origin != a.id
            assert transport_of(a).status()["echoes"] == count
        process.join(WAIT)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.terminate()
            process.join(WAIT)
        results.close()
        results.join_thread()


# --- payloads, messages and configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"when": object()}, "not JSON serializable"),
        ({"tags": {"a", "b"}}, "not JSON serializable"),
        ({"ratio": float("nan")}, "Out of range float"),
    ],
)
def test_payloads_that_cannot_travel_as_json_are_rejected_at_publish(payload: Any, reason: str) -> None:
    with redis_bus(UNREACHABLE, "p") as bus:
        local = Collector()
        bus.subscribe("**", local)
        with pytest.raises(ValidationError, match=reason) as info:
            bus.publish("orders.created", payload)
        assert info.value.field == "payload"
        assert "as JSON" in str(info.value)
        bus.publish("orders.created", {"ok": True})
        assert bus.flush(WAIT)
        assert [dict(e.payload) for e in local.events] == [{"ok": True}]
        assert bus.published == 1
        assert transport_of(bus).status()["outbox"] == 1


@pytest.mark.redis
def test_malformed_messages_are_counted_and_skipped(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    redis_client = redis.Redis.from_url(redis_url)  # not the flushing fixture: pub/sub needs no clean db
    with redis_client, redis_bus(redis_url, prefix) as bus:
        got = Collector()
        bus.subscribe("**", got)
        assert transport_of(bus).wait_connected(WAIT)
        channel = f"{prefix}:x"
        with caplog.at_level(logging.WARNING, logger="buttress.events"):
            for body in (
                b"not json",
                b'{"id": "1", "topic": "x", "payload": [1], "time": 1, "origin": "o"}',
                b'{"topic": "x"}',
                b'{"id": "2", "topic": "a..b", "payload": {}, "time": 1, "origin": "o"}',
                b'{"id": "3", "topic": "x.y", "payload": {"k": 1}, "time": 2, "origin": "o"}',
            ):
                redis_client.publish(channel, body)
            assert got.wait_count(1)
        event = got.events[0]
        assert (event.id, event.topic, event.payload, event.time, event.origin) == (
            "3",
            "x.y",
            {"k": 1},
            2.0,
            "o",
        )
        status = transport_of(bus).status()
        assert status["malformed"] == 3
        assert status["received"] == 2  # the bad topic parsed too, but the bus refused it
        assert "malformed event message" in caplog.text
        assert "ignored a remote event on topic 'a..b'" in caplog.text


def test_urls_are_validated_and_passwords_masked() -> None:
    for bad in ("http://localhost:6379", "localhost:6379", "redis://[::1", 6379):
        with pytest.raises(
            ValidationError, match=r"redis://, rediss://, unix://, redis\+sentinel:// or redis\+cluster://"
        ) as info:
            RedisTransport(bad)  # type: ignore[arg-type]
        assert info.value.field == "redis_url"
    with pytest.raises(ValidationError, match="not a valid Redis URL") as info:
        RedisTransport("redis://:hunter2@localhost:notaport/0")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValidationError, match="prefix") as info:
        RedisTransport("redis://localhost", prefix=" ")
    assert info.value.field == "prefix"
    with pytest.raises(ValidationError, match="outbox_size") as info:
        RedisTransport("redis://localhost", outbox_size=0)
    assert info.value.field == "outbox_size"

    assert mask_url("redis://user:pw@host:6379/0") == "redis://user:**********@host:6379/0"
    assert mask_url("redis://:pw@host/0") == "redis://:**********@host/0"
    assert mask_url("redis://host/0?password=pw&db=1") == "redis://host/0?password=**********&db=1"
    assert mask_url("redis://user@host/0") == "redis://user@host/0"
    assert mask_url("redis://host:6379/0") == "redis://host:6379/0"
    assert mask_url("redis://[::1") == "<unparseable URL>"
    transport = RedisTransport("redis://:pw@localhost:6379/0", prefix="apps")
    assert repr(transport) == "RedisTransport('redis://:**********@localhost:6379/0', prefix='apps')"
    transport.close()


def test_a_transport_serves_one_bus() -> None:
    transport = RedisTransport(UNREACHABLE)
    with EventBus(transport), pytest.raises(RuntimeError, match="exactly one EventBus"):
        EventBus(transport)
    assert transport.wait_connected(0) is False  # closed


@pytest.mark.redis
def test_create_event_bus_builds_a_redis_bus(redis_url: str, prefix: str) -> None:
    with create_event_bus("redis", redis_url=redis_url, prefix=prefix, queue_size=4) as bus:
        transport = transport_of(bus)
        assert isinstance(transport, RedisTransport)
        assert transport.prefix == prefix
        assert bus._queue_size == 4
        assert transport.wait_connected(WAIT)


@pytest.mark.redis
def test_the_default_bus_uses_redis_when_settings_say_so(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from buttress.config import reset_settings

    monkeypatch.setenv("BUTTRESS_EVENTS__TRANSPORT", "redis")
    monkeypatch.setenv("BUTTRESS_EVENTS__PREFIX", prefix)
    monkeypatch.setenv("BUTTRESS_REDIS_URL", redis_url)
    reset_settings()
    reset_event_bus()
    try:
        bus = get_event_bus()
        transport = transport_of(bus)
        assert isinstance(transport, RedisTransport)
        assert transport.prefix == prefix
        assert transport.url == mask_url(redis_url)
    finally:
        reset_event_bus()
        reset_settings()


# --- outages ------------------------------------------------------------------------------------------


def test_with_redis_unreachable_local_delivery_goes_on_and_status_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="buttress.events"):
        bus = redis_bus(UNREACHABLE, "degraded", outbox_size=5)
        local = Collector()
        bus.subscribe("orders.*", local)
        assert transport_of(bus).wait_disconnected(WAIT)
        for i in range(20):
            bus.publish("orders.created", {"i": i})  # never raises, never waits for the network
        assert bus.flush(WAIT)
        assert [e.payload["i"] for e in local.events] == list(range(20))
        status = bus.stats()["transport"]
        assert status["connected"] is False
        assert "127.0.0.1:1" in status["last_error"]
        assert "Connection refused" in status["last_error"]
        assert status["last_error_at"] is not None
        # The outbox keeps the newest 5 events for when Redis returns; the older ones were dropped.
        assert (status["outbox"], status["dropped"], status["sent"]) == (5, 15, 0)
        assert status["url"] == "redis://:**********@127.0.0.1:1/0"
        bus.close()
    assert transport_of(bus).status()["dropped"] == 20  # closing discards (and counts) the outbox
    assert "s3cret-pw" not in repr(bus.stats())
    assert "s3cret-pw" not in caplog.text
    assert "delivered in this process only" in caplog.text


class _PerThreadClock:
    """A fake clock with one timeline per thread: ``sleep`` returns at once and moves only the caller's
    time, so two reconnecting threads do not shorten each other's backoff. Sleeps are recorded per thread
    and can be awaited by count (no polling)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.sleeps: dict[str, list[float]] = {}
        self._changed = threading.Condition()

    def monotonic(self) -> float:
        return 1_000.0 + getattr(self._local, "offset", 0.0)

    def time(self) -> float:
        return 1_700_000_000.0 + getattr(self._local, "offset", 0.0)

    def sleep(self, seconds: float) -> None:
        self._local.offset = getattr(self._local, "offset", 0.0) + seconds
        with self._changed:
            self.sleeps.setdefault(threading.current_thread().name, []).append(seconds)
            self._changed.notify_all()

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def wait_sleeps(self, threads: int, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: len(self.sleeps) >= threads and all(len(s) >= count for s in self.sleeps.values()),
                WAIT,
            )


def test_reconnection_backs_off_exponentially_on_the_injected_clock() -> None:
    clock = _PerThreadClock()
    bus = redis_bus(UNREACHABLE, "backoff", clock=clock, min_backoff=1.0, max_backoff=4.0, poll_interval=10.0)
    try:
        assert clock.wait_sleeps(threads=2, count=5)
    finally:
        bus.close()
    assert set(clock.sleeps) == {"buttress-events-redis-sender", "buttress-events-redis-listener"}
    for sleeps in clock.sleeps.values():  # 1, 2, 4, then capped at 4
        assert sleeps[:5] == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert [backoff_delay(n, 0.5, 10.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert backoff_delay(10_000, 0.5, 10.0) == 10.0


def test_backoff_is_waited_in_slices_so_close_is_prompt() -> None:
    clock = _PerThreadClock()
    bus = redis_bus(UNREACHABLE, "slices", clock=clock, min_backoff=1.0, max_backoff=1.0, poll_interval=0.25)
    try:
        assert clock.wait_sleeps(threads=2, count=8)
    finally:
        bus.close()
    for sleeps in clock.sleeps.values():
        assert sleeps[:8] == [0.25] * 8  # each 1 s backoff is four 0.25 s slices, checking for close between


class TcpProxy:
    """Forwards a local port to Redis; ``stop`` cuts every connection, ``start`` serves again (same port)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(WAIT)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy(redis_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(redis_url)
    tcp_proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    tcp_proxy.start()
    yield tcp_proxy
    tcp_proxy.stop()


@pytest.mark.redis
def test_the_transport_recovers_by_itself_when_redis_returns(
    redis_url: str, prefix: str, proxy: TcpProxy
) -> None:
    db = urlsplit(redis_url).path or "/0"
    via_proxy = f"redis://127.0.0.1:{proxy.port}{db}"
    with (
        redis_bus(via_proxy, prefix, min_backoff=0.01, max_backoff=0.1) as a,
        redis_bus(redis_url, prefix) as b,
    ):
        local, remote = Collector(), Collector()
        a.subscribe("svc.*", local)
        b.subscribe("svc.*", remote)
        assert transport_of(a).wait_connected(WAIT)
        assert transport_of(b).wait_connected(WAIT)
        resubscribed: list[int] = []
        transport_of(a).on_subscribed(lambda: resubscribed.append(1))
        transport_of(a).on_subscribed(lambda: resubscribed.append(2))()  # removed at once: never runs
        a.publish("svc.up", {"n": 1})
        assert remote.wait_count(1)

        proxy.stop()  # Redis "goes away" for a
        assert transport_of(a).wait_disconnected(WAIT)
        a.publish("svc.degraded", {"n": 2})  # local delivery still works; Redis delivery fails
        assert a.flush(WAIT)
        assert [e.payload["n"] for e in local.events] == [1, 2]
        down = transport_of(a).status()
        assert down["connected"] is False
        assert down["last_error"]

        proxy.start()  # ... and comes back on the same address
        assert transport_of(a).wait_connected(WAIT)
        assert resubscribed == [1]  # run before wait_connected returns: what was published meanwhile is lost
        a.publish("svc.recovered", {"n": 3})
        assert remote.wait_for(lambda events: any(e.payload["n"] == 3 for e in events))
        assert a.flush(WAIT)
        up = transport_of(a).status()
        assert up["connected"] is True
        # Every published event is accounted for: sent, lost with a failed round trip, or dropped.
        assert up["sent"] + up["failed"] + up["dropped"] + up["outbox"] == 3
        assert up["failed"] == 1
        assert [e.payload["n"] for e in remote.events] == [1, 3]


@pytest.mark.redis
def test_after_a_quiet_spell_a_dead_sender_connection_is_replaced_before_writing(
    redis_url: str, prefix: str, proxy: TcpProxy
) -> None:
    clock = FakeClock()
    db = urlsplit(redis_url).path or "/0"
    via_proxy = f"redis://127.0.0.1:{proxy.port}{db}"
    with (
        redis_bus(via_proxy, prefix, clock=clock, min_backoff=0.01, max_backoff=0.1) as a,
        redis_bus(redis_url, prefix) as b,
    ):
        remote = Collector()
        b.subscribe("svc.*", remote)
        assert transport_of(a).wait_connected(WAIT)
        assert transport_of(b).wait_connected(WAIT)
        a.publish("svc.first", {"n": 1})
        assert remote.wait_count(1)

        proxy.stop()  # the idle sender's connection dies without the sender noticing
        assert transport_of(a).wait_disconnected(WAIT)  # (the listener notices)
        proxy.start()
        assert transport_of(a).wait_connected(WAIT)
        assert transport_of(a).status()["sender"] == "connected"  # still believes its socket is fine

        clock.advance(60)  # a quiet minute: the sender checks its connection before the next batch
        a.publish("svc.second", {"n": 2})
        assert remote.wait_count(2)
        assert a.flush(WAIT)
        status = transport_of(a).status()
        assert (status["sent"], status["failed"]) == (2, 0)
        assert [e.payload["n"] for e in remote.events] == [1, 2]
