"""The in-process event bus: patterns, delivery order, bounded queues, threads, async, lifecycle."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import ButtressError, ValidationError
from buttress.events import (
    Event,
    EventBus,
    EventBusClosed,
    EventTransport,
    MemoryTransport,
    Subscription,
    create_event_bus,
    get_event_bus,
    publish,
    reset_event_bus,
    set_event_bus,
    subscribe,
    validate_topic,
)
from buttress.events import _bus as bus_module
from buttress.events._event import make_event
from buttress.events._patterns import compile_pattern
from buttress.events._subscription import is_async_handler

WAIT = 10.0  # generous upper bound for waits on Events; tests never sleep


@pytest.fixture
def bus() -> Iterator[EventBus]:
    with EventBus() as event_bus:
        yield event_bus


# --- patterns and topics --------------------------------------------------------------------------------

MATCHES = [
    ("breaker.*", "breaker.opened", True),
    ("breaker.*", "breaker.api.opened", False),
    ("breaker.*", "breaker", False),
    ("*", "orders", True),
    ("*", "orders.created", False),
    ("*.opened", "breaker.opened", True),
    ("*.opened", "opened", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("**", "a", True),
    ("**", "a.b.c.d", True),
    ("http.**", "http", True),
    ("http.**", "http.a", True),
    ("http.**", "http.a.b", True),
    ("http.**", "https", False),
    ("http.**", "api.http", False),
    ("**.failed", "failed", True),
    ("**.failed", "jobs.email.failed", True),
    ("**.failed", "jobs.failed.retry", False),
    ("a.**.z", "a.z", True),
    ("a.**.z", "a.b.c.z", True),
    ("a.**.z", "a.b.c", False),
    ("a.**.*", "a", False),
    ("a.**.*", "a.b", True),
    ("orders.created", "orders.created", True),
    ("orders.created", "orders.created.v2", False),
    ("orders.created", "orders.createdx", False),
    ("a+b.c", "a+b.c", True),  # regex metacharacters are literal
    ("a+b.c", "aab.c", False),
    ("a.b", "axb", False),
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), MATCHES)
def test_pattern_matching_table(pattern: str, topic: str, expected: bool) -> None:
    assert compile_pattern(pattern).matches(topic) is expected


INVALID_PATTERNS = [
    ("", "pattern must not be empty"),
    ("a..b", "has an empty segment"),
    (".a", "has an empty segment"),
    ("a.", "has an empty segment"),
    ("a.b*", "mixes '*' with other characters"),
    ("***", "mixes '*' with other characters"),
    ("*x.y", "a wildcard must be a whole segment"),
    ("a b", "contains whitespace"),
    (42, "pattern must be a string"),
]


@pytest.mark.parametrize(("pattern", "message"), INVALID_PATTERNS)
def test_invalid_patterns_are_rejected_naming_the_fix(bus: EventBus, pattern: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)) as info:
        bus.subscribe(pattern, lambda event: None)
    assert info.value.field == "pattern"
    assert "for example" in str(info.value) or "such as" in str(info.value)
    assert bus.subscriptions == ()


INVALID_TOPICS = [
    ("", "topic must not be empty"),
    ("a..b", "has an empty segment"),
    ("a.", "has an empty segment"),
    ("breaker.*", "contains a wildcard; wildcards belong in subscribe"),
    ("http.**", "contains a wildcard"),
    ("a b", "contains whitespace"),
    (None, "topic must be a string"),
    (["a"], "topic must be a string"),
]


@pytest.mark.parametrize(("topic", "message"), INVALID_TOPICS)
def test_invalid_topics_are_rejected_at_publish(bus: EventBus, topic: Any, message: str) -> None:
    bus.subscribe("**", lambda event: None)
    with pytest.raises(ValidationError, match=re.escape(message)) as info:
        bus.publish(topic)
    assert info.value.field == "topic"
    assert info.value.error_code == "validation_failed"
    assert bus.published == 0


def test_validate_topic_returns_a_valid_topic() -> None:
    assert validate_topic("orders.created") == "orders.created"


def test_compiled_patterns_are_cached() -> None:
    assert compile_pattern("cache.*") is compile_pattern("cache.*")
    assert repr(compile_pattern("cache.*")) == "Pattern('cache.*')"


# --- the event ----------------------------------------------------------------------------------------


def test_event_is_a_frozen_slotted_record_stamped_by_the_bus() -> None:
    clock = FakeClock()
    received: list[Event] = []
    with EventBus(clock=clock) as bus:
        bus.subscribe("orders.*", received.append)
        bus.publish("orders.created", {"id": 1})
        clock.advance(5)
        bus.publish("orders.paid", {"id": 1})
        assert bus.flush(WAIT)
    first, second = received
    assert (first.topic, dict(first.payload), first.time) == ("orders.created", {"id": 1}, clock.start_time)
    assert second.time == clock.start_time + 5
    assert first.origin == second.origin == bus.id
    assert first.id != second.id
    assert first.id.startswith(bus.id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.topic = "x"  # type: ignore[misc]
    assert not hasattr(first, "__dict__")


def test_fast_event_factory_builds_the_same_event() -> None:
    fast = make_event("a.b", {"x": 1}, 1.5, "origin", "id-1")
    assert fast == Event("a.b", {"x": 1}, 1.5, "origin", "id-1")
    assert type(fast) is Event


def test_payload_is_copied_and_must_be_a_mapping(bus: EventBus) -> None:
    received: list[Event] = []
    bus.subscribe("p", received.append)
    original = {"n": 1}
    bus.publish("p", original)
    original["n"] = 2  # the publisher's later change does not reach the subscriber
    bus.publish("p", MappingProxyType({"m": 3}))
    bus.publish("p")
    assert bus.flush(WAIT)
    assert [dict(e.payload) for e in received] == [{"n": 1}, {"m": 3}, {}]
    for bad in ([1, 2], "text", 7):
        with pytest.raises(ValidationError, match="payload must be a mapping") as info:
            bus.publish("p", bad)  # type: ignore[arg-type]
        assert info.value.field == "payload"
        with pytest.raises(ValidationError, match="payload must be a mapping"):
            bus.publish("nobody.listens", bad)  # type: ignore[arg-type]
    assert bus.published == 3


# --- delivery -----------------------------------------------------------------------------------------


def test_sync_handler_gets_events_in_publish_order_on_its_own_thread(bus: EventBus) -> None:
    seen: list[int] = []
    threads: set[str] = set()

    def handler(event: Event) -> None:
        seen.append(event.payload["i"])
        threads.add(threading.current_thread().name)

    subscription = bus.subscribe("numbers.*", handler)
    for i in range(500):
        bus.publish("numbers.next", {"i": i})
    assert bus.flush(WAIT)
    assert seen == list(range(500))
    assert threads == {"buttress-events[numbers.*]"}
    assert (subscription.delivered, subscription.failed, subscription.dropped) == (500, 0, 0)
    assert subscription.pending == 0


def test_publish_does_not_run_handlers_inline(bus: EventBus) -> None:
    calling_thread: list[threading.Thread] = []
    bus.subscribe("t", lambda event: calling_thread.append(threading.current_thread()))
    bus.publish("t")
    assert bus.flush(WAIT)
    assert calling_thread
    assert calling_thread[0] is not threading.current_thread()


async def test_async_handler_gets_events_in_publish_order_on_its_loop(bus: EventBus) -> None:
    loop = asyncio.get_running_loop()
    seen: list[int] = []
    loops: set[asyncio.AbstractEventLoop] = set()

    async def handler(event: Event) -> None:
        loops.add(asyncio.get_running_loop())
        await asyncio.sleep(0)
        seen.append(event.payload["i"])

    subscription = bus.subscribe("n.*", handler)
    assert subscription.is_async
    for i in range(200):
        bus.publish("n.x", {"i": i})
    assert await bus.aflush(WAIT)
    assert seen == list(range(200))
    assert loops == {loop}
    assert subscription.delivered == 200


async def test_async_handler_is_woken_by_publishers_on_other_threads(bus: EventBus) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(event: Event) -> None:
        seen.append(event.payload["i"])
        if len(seen) == 300:
            done.set()

    bus.subscribe("remote.*", handler)

    def publish_all() -> None:
        for i in range(300):
            bus.publish("remote.x", {"i": i})

    await asyncio.to_thread(publish_all)
    await asyncio.wait_for(done.wait(), WAIT)
    assert seen == list(range(300))


def test_async_handler_needs_a_running_loop(bus: EventBus) -> None:
    async def handler(event: Event) -> None:
        return None

    with pytest.raises(ValidationError, match="needs a running event loop") as info:
        bus.subscribe("x", handler)
    assert info.value.field == "handler"


def test_async_handlers_are_detected_at_subscribe_time() -> None:
    async def coroutine_function(event: Event) -> None:
        return None

    class AsyncCallable:
        async def __call__(self, event: Event) -> None:
            return None

    assert is_async_handler(coroutine_function)
    assert is_async_handler(functools.partial(coroutine_function))
    assert is_async_handler(AsyncCallable())
    assert not is_async_handler(print)
    assert not is_async_handler(lambda event: None)


def test_a_failing_handler_is_logged_counted_and_delivery_continues(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[int] = []

    def handler(event: Event) -> None:
        if event.payload["i"] % 2:
            raise RuntimeError("boom")
        handled.append(event.payload["i"])

    subscription = bus.subscribe("jobs.*", handler)
    with caplog.at_level(logging.ERROR, logger="buttress.events"):
        for i in range(10):
            bus.publish("jobs.ran", {"i": i})
        assert bus.flush(WAIT)
    assert handled == [0, 2, 4, 6, 8]
    assert (subscription.delivered, subscription.failed) == (5, 5)
    failures = [r for r in caplog.records if r.name == "buttress.events"]
    assert len(failures) == 5
    assert "'jobs.ran'" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    assert failures[0].topic == "jobs.ran"  # type: ignore[attr-defined]


async def test_a_failing_async_handler_is_counted_and_delivery_continues(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[int] = []

    async def handler(event: Event) -> None:
        if event.payload["i"] == 1:
            raise ValueError("bad event")
        handled.append(event.payload["i"])

    subscription = bus.subscribe("a", handler)
    with caplog.at_level(logging.ERROR, logger="buttress.events"):
        for i in range(3):
            bus.publish("a", {"i": i})
        assert await bus.aflush(WAIT)
    assert handled == [0, 2]
    assert (subscription.delivered, subscription.failed) == (2, 1)
    assert "failed on topic 'a'" in caplog.text


def test_each_subscription_gets_its_own_copy_of_the_stream(bus: EventBus) -> None:
    first: list[str] = []
    second: list[str] = []
    bus.subscribe("**", lambda event: first.append(event.topic))
    bus.subscribe("orders.*", lambda event: second.append(event.topic))
    for topic in ("orders.created", "users.created", "orders.paid"):
        bus.publish(topic)
    assert bus.flush(WAIT)
    assert first == ["orders.created", "users.created", "orders.paid"]
    assert second == ["orders.created", "orders.paid"]


# --- bounded queues and slow subscribers ----------------------------------------------------------------


def test_a_blocked_subscriber_drops_its_oldest_events_and_never_blocks_publishers(bus: EventBus) -> None:
    queue_size, total = 10, 100
    started = threading.Event()
    release = threading.Event()
    seen: list[int] = []

    def slow(event: Event) -> None:
        started.set()
        assert release.wait(WAIT)
        seen.append(event.payload["i"])

    fast_seen: list[int] = []
    slow_sub = bus.subscribe("work", slow, queue_size=queue_size)
    fast_sub = bus.subscribe("work", lambda event: fast_seen.append(event.payload["i"]))

    bus.publish("work", {"i": 0})
    assert started.wait(WAIT)  # event 0 is now in flight, the handler is blocked
    published = 1
    for i in range(1, total):
        bus.publish("work", {"i": i})
        published += 1
    # Every publish returned while the handler is still blocked: publishing never waits for it.
    assert published == total
    assert not release.is_set()
    assert slow_sub.delivered == 0
    assert slow_sub.dropped == total - queue_size - 1
    assert slow_sub.pending == queue_size
    assert fast_sub.dropped == 0

    release.set()
    assert bus.flush(WAIT)
    # The in-flight event, then the newest queue_size events: the oldest queued ones were dropped.
    assert seen == [0, *range(total - queue_size, total)]
    assert slow_sub.delivered == queue_size + 1
    assert fast_seen == list(range(total))  # the other subscriber was not held back
    assert bus.stats()["dropped"] == total - queue_size - 1


def test_flush_reports_a_timeout_while_a_handler_is_stuck(bus: EventBus) -> None:
    release = threading.Event()
    started = threading.Event()

    def stuck(event: Event) -> None:
        started.set()
        release.wait(WAIT)

    bus.subscribe("s", stuck)
    bus.publish("s")
    assert started.wait(WAIT)
    assert bus.flush(0.01) is False
    release.set()
    assert bus.flush(WAIT) is True


# --- concurrency --------------------------------------------------------------------------------------


def test_many_threads_publishing_at_once_deliver_every_event_exactly_once(bus: EventBus) -> None:
    threads, per_thread = 8, 500
    first: list[tuple[int, int]] = []
    second: list[tuple[int, int]] = []
    subs = [
        bus.subscribe("load.*", lambda e: first.append((e.payload["t"], e.payload["i"])), queue_size=10_000),
        bus.subscribe("**", lambda e: second.append((e.payload["t"], e.payload["i"])), queue_size=10_000),
    ]
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                bus.publish("load.tick", {"t": index, "i": i})
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert not errors
    assert bus.flush(WAIT)
    expected = {(t, i) for t in range(threads) for i in range(per_thread)}
    for received, subscription in zip((first, second), subs, strict=True):
        counts = Counter(received)
        assert set(counts) == expected
        assert set(counts.values()) == {1}
        assert subscription.dropped == 0
        for t in range(threads):  # each publisher's own events stay in order
            assert [i for (tt, i) in received if tt == t] == list(range(per_thread))
    assert bus.published == threads * per_thread


# --- subscribe, unsubscribe, flush, close -------------------------------------------------------------


def test_unsubscribe_stops_delivery_and_is_idempotent(bus: EventBus) -> None:
    seen: list[int] = []
    subscription = bus.subscribe("u", lambda event: seen.append(event.payload["i"]))
    bus.publish("u", {"i": 1})
    assert bus.flush(WAIT)
    subscription.unsubscribe()
    subscription.close()
    assert subscription.closed
    assert subscription not in bus.subscriptions
    bus.publish("u", {"i": 2})
    assert bus.flush(WAIT)
    assert seen == [1]
    assert "closed" in repr(subscription)


def test_the_route_cache_sees_new_subscriptions(bus: EventBus) -> None:
    bus.publish("late.topic")  # cached as "nobody listens"
    seen: list[str] = []
    bus.subscribe("late.*", lambda event: seen.append(event.topic))
    bus.publish("late.topic")
    assert bus.flush(WAIT)
    assert seen == ["late.topic"]


def test_the_route_cache_is_bounded(bus: EventBus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_module, "_MAX_ROUTES", 3)
    seen: list[str] = []
    bus.subscribe("**", lambda event: seen.append(event.topic))
    topics = [f"t{i}" for i in range(10)]
    for topic in topics:
        bus.publish(topic)
    assert bus.flush(WAIT)
    assert seen == topics
    assert len(bus._routes) <= 3


def test_a_handler_may_unsubscribe_itself(bus: EventBus) -> None:
    seen: list[int] = []
    holder: list[Subscription] = []

    def once(event: Event) -> None:
        seen.append(event.payload["i"])
        holder[0].unsubscribe()

    holder.append(bus.subscribe("once", once))
    for i in range(5):
        bus.publish("once", {"i": i})
    assert bus.flush(WAIT)
    assert seen == [0]


def test_flush_waits_for_events_that_handlers_publish(bus: EventBus) -> None:
    audit: list[str] = []
    bus.subscribe("orders.created", lambda event: bus.publish("audit.recorded", {"of": event.id}))
    bus.subscribe("audit.*", lambda event: audit.append(event.topic))
    for _ in range(20):
        bus.publish("orders.created")
    assert bus.flush(WAIT)
    assert audit == ["audit.recorded"] * 20


def test_flush_from_a_handler_skips_its_own_subscription(bus: EventBus) -> None:
    results: list[bool] = []
    bus.subscribe("f", lambda event: results.append(bus.flush(WAIT)))
    bus.publish("f")
    assert bus.flush(WAIT)
    assert results == [True]


def test_close_delivers_what_was_queued_then_refuses_new_work() -> None:
    seen: list[int] = []
    bus = EventBus()
    subscription = bus.subscribe("c", lambda event: seen.append(event.payload["i"]))
    for i in range(200):
        bus.publish("c", {"i": i})
    bus.close()
    assert seen == list(range(200))
    assert bus.closed
    assert subscription.closed
    bus.close()  # idempotent
    with pytest.raises(EventBusClosed, match="closed") as info:
        bus.publish("c", {"i": 1})
    assert info.value.error_code == "event_bus_closed"
    assert isinstance(info.value, ButtressError)
    with pytest.raises(EventBusClosed):
        bus.publish("never.seen.before")
    with pytest.raises(EventBusClosed):
        bus.subscribe("c", print)
    subscription.unsubscribe()  # after close: harmless
    assert bus.stats()["closed"] is True


async def test_async_context_manager_drains_async_subscribers() -> None:
    seen: list[int] = []

    async def handler(event: Event) -> None:
        await asyncio.sleep(0)
        seen.append(event.payload["i"])

    async with EventBus() as bus:
        subscription = bus.subscribe("x", handler)
        for i in range(50):
            bus.publish("x", {"i": i})
    assert seen == list(range(50))
    assert bus.closed
    assert subscription.closed


async def test_sync_flush_from_the_loop_thread_with_pending_async_work_is_refused(bus: EventBus) -> None:
    async def handler(event: Event) -> None:
        return None

    bus.subscribe("x", handler)
    bus.publish("x")  # the task cannot run until this coroutine yields
    with pytest.raises(RuntimeError, match=r"await bus\.aflush\(\)"):
        bus.flush(WAIT)
    assert await bus.aflush(WAIT)


async def test_sync_close_from_the_loop_thread_does_not_deadlock() -> None:
    async def handler(event: Event) -> None:
        return None

    bus = EventBus()
    subscription = bus.subscribe("x", handler)
    bus.publish("x")
    bus.close()  # cannot wait for this loop's subscribers: they are stopped, not drained
    assert subscription.closed
    await asyncio.sleep(0)


def test_an_async_subscription_whose_loop_closed_stops_quietly(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.new_event_loop()

    async def handler(event: Event) -> None:
        return None

    async def subscribe_and_park() -> Subscription:
        subscription = bus.subscribe("x", handler)
        await asyncio.sleep(0)  # let its task start and park
        return subscription

    subscription = loop.run_until_complete(subscribe_and_park())
    loop.close()
    with caplog.at_level(logging.WARNING, logger="buttress.events"):
        bus.publish("x")
    assert subscription.closed
    assert "its event loop is closed" in caplog.text
    assert bus.flush(WAIT)
    task = subscription._task
    assert task is not None
    task.get_coro().close()  # type: ignore[union-attr]


def test_a_loop_that_ends_closes_its_async_subscriptions(bus: EventBus) -> None:
    async def handler(event: Event) -> None:
        return None

    async def subscribe_only() -> Subscription:
        subscription = bus.subscribe("x", handler)
        await asyncio.sleep(0)
        return subscription

    subscription = asyncio.run(subscribe_only())  # asyncio.run cancels the parked task
    assert subscription.closed
    bus.publish("x")
    assert bus.flush(WAIT)
    assert subscription.delivered == 0


# --- arguments, stats and the default bus -------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -1, True, "10", 2.5])
def test_queue_size_must_be_a_positive_int(bus: EventBus, size: Any) -> None:
    with pytest.raises(ValidationError, match="queue_size must be a whole number") as info:
        EventBus(queue_size=size)
    assert info.value.field == "queue_size"
    with pytest.raises(ValidationError, match="queue_size"):
        bus.subscribe("x", print, queue_size=size)


def test_handler_must_be_callable(bus: EventBus) -> None:
    with pytest.raises(ValidationError, match="handler must be a function") as info:
        bus.subscribe("x", "not a function")  # type: ignore[arg-type]
    assert info.value.field == "handler"


def test_stats_report_counters_per_subscription_and_the_transport() -> None:
    clock = FakeClock()
    with EventBus(MemoryTransport(), clock=clock, queue_size=5) as bus:
        subscription = bus.subscribe("s.*", lambda event: None)
        bus.publish("s.one")
        bus.publish("nobody.listens")
        assert bus.flush(WAIT)
        stats = bus.stats()
        assert stats["published"] == 2
        assert stats["delivered"] == 1
        assert stats["transport"] == {"transport": "memory", "connected": True}
        assert stats["subscriptions"] == [
            {
                "pattern": "s.*",
                "handler": subscription.stats()["handler"],
                "kind": "sync",
                "queue_size": 5,
                "pending": 0,
                "delivered": 1,
                "failed": 0,
                "dropped": 0,
                "closed": False,
            }
        ]
        assert "test_stats_report_counters" in stats["subscriptions"][0]["handler"]
        assert subscription.queue_size == 5
        assert subscription.pattern == "s.*"
        assert subscription.handler is not None
        assert isinstance(bus.transport, EventTransport)
        assert bus.clock is clock
        assert "MemoryTransport" in repr(bus)
        assert "1 subscriptions" in repr(bus)
        assert "pending=0" in repr(subscription)
    assert "closed" in repr(bus)
    assert repr(MemoryTransport()) == "MemoryTransport()"


def test_create_event_bus_builds_memory_buses_and_explains_bad_arguments() -> None:
    with create_event_bus(queue_size=3) as bus:
        assert isinstance(bus.transport, MemoryTransport)
        assert bus._queue_size == 3
    with pytest.raises(ValidationError, match="needs a Redis URL") as info:
        create_event_bus("redis")
    assert info.value.field == "redis_url"
    with pytest.raises(ValidationError, match="'memory' or 'redis'") as info:
        create_event_bus("kafka")  # type: ignore[arg-type]
    assert info.value.field == "transport"


@pytest.fixture
def default_bus_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from buttress.config import reset_settings

    monkeypatch.setenv("BUTTRESS_EVENTS__TRANSPORT", "memory")
    monkeypatch.setenv("BUTTRESS_EVENTS__QUEUE_SIZE", "7")
    monkeypatch.delenv("BUTTRESS_REDIS_URL", raising=False)
    reset_settings()
    reset_event_bus()
    yield
    reset_event_bus()
    reset_settings()


@pytest.mark.usefixtures("default_bus_settings")
def test_the_default_bus_is_built_once_from_settings_even_under_a_race() -> None:
    count = 16
    barrier = threading.Barrier(count)
    buses: list[EventBus] = []

    def worker() -> None:
        barrier.wait()
        buses.append(get_event_bus())

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(buses) == count
    assert len({id(bus) for bus in buses}) == 1
    assert buses[0]._queue_size == 7
    assert isinstance(buses[0].transport, MemoryTransport)


@pytest.mark.usefixtures("default_bus_settings")
def test_module_level_publish_and_subscribe_use_the_default_bus() -> None:
    mine = EventBus()
    previous = set_event_bus(mine)
    assert previous is None
    seen: list[str] = []
    subscription = subscribe("app.*", lambda event: seen.append(event.topic))
    publish("app.started", {"version": 1})
    assert get_event_bus() is mine
    assert mine.flush(WAIT)
    assert seen == ["app.started"]
    assert subscription in mine.subscriptions
    reset_event_bus()
    assert mine.closed
    fresh = get_event_bus()
    assert fresh is not mine
    assert not fresh.closed
