"""Cache warmers: registration, sync/async/generator warmers, failures, events, metrics, one run at a time."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from buttress.cache import Cache, MemoryBackend
from buttress.cache._warm import (
    WarmCancelled,
    WarmProgress,
    arun_warmers,
    run_warmers,
    start_startup_warming,
    start_warming,
    warmer,
    warmer_caches,
    warmers_of,
)
from buttress.clock import FakeClock
from buttress.errors import ConflictError, NotFoundError, ValidationError
from buttress.events import Event, EventBus
from buttress.observe.metrics import MetricsRegistry

WAIT = 10.0  # seconds a test waits for a thread it released; never reached when things work


@pytest.fixture(autouse=True)
def _forget_dead_caches() -> Iterator[None]:
    """Collect each test's caches, so no other test (or ops server) sees their warmers."""
    yield
    gc.collect()


@pytest.fixture
def bus() -> Iterator[EventBus]:
    with EventBus() as events:
        yield events


@pytest.fixture
def cache(clock: FakeClock, bus: EventBus) -> Cache:
    return Cache(MemoryBackend(clock=clock), clock=clock, metrics=MetricsRegistry(clock=clock), events=bus)


def _events(bus: EventBus) -> list[Event]:
    seen: list[Event] = []
    bus.subscribe("cache.warm.*", seen.append)
    return seen


def _runs(cache: Cache) -> dict[tuple[str, str], float]:
    assert cache.metrics is not None
    snapshot = cache.metrics.snapshot()["buttress_cache_warm_runs_total"]
    return {(s["labels"]["warmer"], s["labels"]["outcome"]): s["value"] for s in snapshot["series"]}


def test_every_kind_of_warmer_fills_the_cache(cache: Cache) -> None:
    @cache.cached(key="artist:{artist_id}")
    def artist(artist_id: int) -> dict[str, int]:
        return {"id": artist_id}

    @warmer(cache, "plain")
    def plain() -> None:
        cache.set("plain", "done")

    @warmer(cache, "generator")
    def generator() -> Iterator[tuple[int, int]]:
        ids = [1, 2, 3]
        for done, artist_id in enumerate(ids, 1):
            artist(artist_id)
            yield done, len(ids)

    @warmer(cache, "coroutine")
    async def coroutine() -> None:
        await cache.aset("coroutine", "done")

    @warmer(cache, "async_generator")
    async def async_generator() -> AsyncIterator[int]:
        for done in range(1, 6):
            await cache.aset(f"a:{done}", done)
            yield done

    results = run_warmers(cache)
    assert [(r.name, r.outcome, r.items, r.error) for r in results] == [
        ("plain", "ok", 1, None),
        ("generator", "ok", 3, None),
        ("coroutine", "ok", 1, None),
        ("async_generator", "ok", 5, None),
    ]
    assert (cache.get("plain"), cache.get("coroutine")) == ("done", "done")
    assert cache.get("a:5") == 5
    assert cache.get("artist:2") == {"id": 2}  # the cached function's entry: a later call is a hit
    assert list(warmers_of(cache)) == ["plain", "generator", "coroutine", "async_generator"]
    assert _runs(cache) == {(name, "ok"): 1.0 for name in warmers_of(cache)}


def test_a_failing_warmer_does_not_stop_the_others(cache: Cache, bus: EventBus) -> None:
    seen = _events(bus)

    @warmer(cache, "broken")
    def broken() -> Iterator[int]:
        yield 1
        raise ConnectionError("upstream refused")

    @warmer(cache, "fine")
    def fine() -> None:
        cache.set("fine", 1)

    results = run_warmers(cache)
    assert [(r.name, r.outcome, r.items) for r in results] == [("broken", "failed", 1), ("fine", "ok", 1)]
    assert results[0].error == "ConnectionError: upstream refused"
    assert cache.get("fine") == 1
    assert _runs(cache) == {("broken", "failed"): 1.0, ("fine", "ok"): 1.0}
    assert bus.flush()
    failed = [e for e in seen if e.topic == "cache.warm.failed"]
    assert [dict(e.payload) for e in failed] == [
        {"warmer": "broken", "items": 1, "error": "ConnectionError: upstream refused", "seconds": 0.0}
    ]
    assert warmers_of(cache)["broken"].last == results[0]


def test_progress_events_are_throttled_and_the_final_count_is_sent(
    cache: Cache, bus: EventBus, clock: FakeClock
) -> None:
    seen = _events(bus)

    @warmer(cache, "slow")
    def slow() -> Iterator[tuple[int, int]]:
        for done in range(1, 11):
            clock.advance(0.25)  # a step every 0.25 s: at most every other one is published
            yield done, 10

    [result] = run_warmers(cache)
    assert (result.items, result.seconds) == (10, 2.5)
    assert bus.flush()
    assert (seen[0].topic, seen[-1].topic) == ("cache.warm.started", "cache.warm.finished")
    progress = [dict(e.payload) for e in seen if e.topic == "cache.warm.progress"]
    assert [(p["done"], p["total"], p["seconds"]) for p in progress] == [
        (1, 10, 0.25),
        (3, 10, 0.75),
        (5, 10, 1.25),
        (7, 10, 1.75),
        (9, 10, 2.25),
        (10, 10, 2.5),  # the final count, though only 0.25 s after the last event
    ]
    assert dict(seen[-1].payload) == {"warmer": "slow", "items": 10, "seconds": 2.5}


def test_the_progress_callback_sees_every_step(cache: Cache) -> None:
    @warmer(cache, "steps")
    def steps() -> Iterator[int]:
        yield from (1, 2)

    @warmer(cache, "boom")
    def boom() -> None:
        raise KeyError("x")

    calls: list[WarmProgress] = []
    run_warmers(cache, progress=calls.append)
    assert [(p.name, p.phase, p.done) for p in calls] == [
        ("steps", "started", 0),
        ("steps", "progress", 1),
        ("steps", "progress", 2),
        ("steps", "finished", 2),
        ("boom", "started", 0),
        ("boom", "failed", 0),
    ]


def test_names_pick_warmers_and_unknown_names_run_nothing(cache: Cache) -> None:
    ran: list[str] = []

    @warmer(cache, "a")
    def a() -> None:
        ran.append("a")

    @warmer(cache, "b")
    def b() -> None:
        ran.append("b")

    assert [r.name for r in run_warmers(cache, ["b"])] == ["b"]
    with pytest.raises(NotFoundError, match=r"no cache warmer named 'nope'; registered: a, b") as raised:
        run_warmers(cache, ["a", "nope"])
    assert raised.value.status == 404
    assert ran == ["b"]
    with pytest.raises(ValidationError, match="names must be a list"):
        run_warmers(cache, "a")
    empty = Cache(MemoryBackend())
    with pytest.raises(NotFoundError, match=r"registered: none \(register one with @cache.warmer"):
        run_warmers(empty, ["a"])


def test_a_bad_yield_fails_that_warmer_with_a_clear_error(cache: Cache) -> None:
    @warmer(cache, "chatty")
    def chatty() -> Iterator[object]:
        yield 1
        yield "half done"

    [result] = run_warmers(cache)
    assert result.outcome == "failed"
    assert result.error is not None
    assert result.error.startswith(
        "ValidationError: cache warmer 'chatty' yielded 'half done'; yield the items"
    )


def test_registration_checks_names_and_refuses_a_second_function_under_a_taken_name(cache: Cache) -> None:
    with pytest.raises(ValidationError, match="a warmer name must be a non-empty string"):
        warmer(cache, " padded ")
    with pytest.raises(ValidationError, match="on_startup must be True or False"):
        warmer(cache, "x", on_startup="yes")  # type: ignore[arg-type]

    def first() -> None: ...

    warmer(cache, "x")(first)
    warmer(cache, "x")(first)  # the same function again (a module imported twice) is fine
    with pytest.raises(ConflictError, match="cache warmer 'x' is already registered by"):

        @warmer(cache, "x")
        def second() -> None: ...

    with pytest.raises(ValidationError, match="decorates functions"):
        warmer(cache, "y")(42)  # type: ignore[type-var]
    assert warmers_of(cache.namespaced("other"))["x"].fn is first  # siblings share the registry


def test_one_run_at_a_time(cache: Cache) -> None:
    release = threading.Event()
    entered = threading.Event()

    @warmer(cache, "blocking")
    def blocking() -> None:
        entered.set()
        assert release.wait(WAIT)

    first = threading.Thread(target=run_warmers, args=(cache,))
    first.start()
    try:
        assert entered.wait(WAIT)
        assert warmers_of(cache)["blocking"].running
        with pytest.raises(ConflictError, match=r"a cache warm run is already in progress \(blocking\)"):
            run_warmers(cache)
        assert start_startup_warming(cache) is None  # startup does not queue behind a manual run
    finally:
        release.set()
        first.join(WAIT)
    assert not warmers_of(cache)["blocking"].running
    assert [r.outcome for r in run_warmers(cache)] == ["ok"]  # released: a new run may start


async def test_arun_runs_sync_warmers_in_a_thread_and_async_ones_on_the_loop(cache: Cache) -> None:
    where: dict[str, str] = {}
    loop_thread = threading.current_thread().name

    @warmer(cache, "sync")
    def sync() -> Iterator[int]:
        where["sync"] = threading.current_thread().name
        yield 7

    @warmer(cache, "async")
    async def asynchronous() -> None:
        where["async"] = threading.current_thread().name
        await asyncio.sleep(0)

    results = await arun_warmers(cache)
    assert [(r.name, r.items) for r in results] == [("sync", 7), ("async", 1)]
    assert where["async"] == loop_thread
    assert where["sync"] != loop_thread
    with pytest.raises(NotFoundError):
        await arun_warmers(cache, ["missing"])


async def test_run_warmers_inside_a_running_loop_still_runs_async_warmers(cache: Cache) -> None:
    @warmer(cache, "async")
    async def asynchronous() -> None:
        await cache.aset("k", 1)

    [result] = run_warmers(cache)  # asyncio.run cannot nest: it runs in a helper thread
    assert result.outcome == "ok"
    assert cache.get("k") == 1


def test_startup_warming_runs_only_startup_warmers_in_the_background(cache: Cache) -> None:
    release = threading.Event()
    ran: list[str] = []

    @warmer(cache, "at_startup")
    def at_startup() -> None:
        assert release.wait(WAIT)
        ran.append("at_startup")

    @warmer(cache, "on_demand", on_startup=False)
    def on_demand() -> None:
        ran.append("on_demand")

    thread = start_startup_warming(cache)
    assert thread is not None
    assert thread.daemon
    assert thread.is_alive()  # returned while the warmer still waits
    release.set()
    thread.join(WAIT)
    assert ran == ["at_startup"]
    assert warmers_of(cache)["at_startup"].last is not None
    only_on_demand = Cache(MemoryBackend())
    warmer(only_on_demand, "later", on_startup=False)(on_demand)
    assert start_startup_warming(only_on_demand) is None


def test_start_warming_covers_every_cache_with_warmers(cache: Cache, clock: FakeClock) -> None:
    other = Cache(MemoryBackend(clock=clock), clock=clock, metrics=MetricsRegistry(clock=clock))
    warmer(cache, "one")(lambda: cache.set("one", 1))
    warmer(other, "two")(lambda: other.set("two", 2))
    assert {id(c) for c in warmer_caches()} >= {id(cache), id(other)}
    with pytest.raises(NotFoundError, match="no cache warmer named 'three'"):
        start_warming(["one", "three"], caches=[cache, other])
    started = start_warming(["two"], caches=[cache, other])
    assert started.names == ["two"]
    for thread in started.threads:
        thread.join(WAIT)
    assert other.get("two") == 2
    assert cache.get("one") is None
    started = start_warming(caches=[cache, other])
    for thread in started.threads:
        thread.join(WAIT)
    assert started.names == ["one", "two"]
    assert cache.get("one") == 1


def test_start_warming_starts_nothing_when_one_cache_is_busy(cache: Cache, clock: FakeClock) -> None:
    other = Cache(MemoryBackend(clock=clock), clock=clock, metrics=MetricsRegistry(clock=clock))
    release, entered = threading.Event(), threading.Event()

    def blocking() -> None:
        entered.set()
        assert release.wait(WAIT)

    warmer(cache, "free")(lambda: cache.set("free", 1))
    warmer(other, "busy")(blocking)
    busy = start_warming(caches=[other])
    try:
        assert entered.wait(WAIT)
        with pytest.raises(ConflictError):
            start_warming(caches=[cache, other])
        assert cache.get("free") is None
        assert start_warming(caches=[cache]).names == ["free"]  # the idle cache was released again
    finally:
        release.set()
        for thread in busy.threads:
            thread.join(WAIT)


def test_a_dropped_cache_is_forgotten() -> None:
    dropped = Cache(MemoryBackend())
    warmer(dropped, "gone")(lambda: None)
    marker = id(dropped)
    del dropped
    gc.collect()
    assert marker not in {id(c) for c in warmer_caches()}


def test_a_closed_cache_is_no_longer_warmed() -> None:
    """A cache a module still holds (its @cached functions do) is not warmed once closed."""
    closed, kept = Cache(MemoryBackend()), Cache(MemoryBackend())
    warmer(closed, "old")(lambda: None)
    warmer(kept, "new")(lambda: None)
    closed.close()
    live = {id(c) for c in warmer_caches()}
    assert id(closed) not in live
    assert id(kept) in live
    kept.close()


async def test_an_async_closed_cache_is_no_longer_warmed() -> None:
    closed = Cache(MemoryBackend())
    warmer(closed, "old")(lambda: None)
    await closed.aclose()
    assert id(closed) not in {id(c) for c in warmer_caches()}


def test_a_broken_progress_callback_does_not_fail_the_warmers(cache: Cache) -> None:
    def broken(progress: WarmProgress) -> None:
        raise RuntimeError("display gone")

    warmer(cache, "fine")(lambda: cache.set("fine", 1))
    assert [r.outcome for r in run_warmers(cache, progress=broken)] == ["ok"]
    assert cache.get("fine") == 1


def test_stop_ends_the_run_at_the_next_yield_and_records_it_cancelled(cache: Cache, bus: EventBus) -> None:
    seen = _events(bus)
    stopping = threading.Event()
    after: list[int] = []

    @warmer(cache, "long")
    def long() -> Iterator[int]:
        try:
            for done in range(1, 100):
                if done == 3:
                    stopping.set()  # someone cancels while the third item is being warmed
                yield done
                after.append(done)
        finally:
            after.append(-1)  # the generator is closed, so its cleanup runs

    @warmer(cache, "next")
    def following() -> None:
        cache.set("next", 1)

    with pytest.raises(WarmCancelled) as raised:
        run_warmers(cache, stop=stopping.is_set)
    assert (raised.value.name, raised.value.items) == ("long", 3)
    assert after == [1, 2, -1]
    assert cache.get("next") is None  # the rest of the run does not start
    last = warmers_of(cache)["long"].last
    assert last is not None
    assert (last.outcome, last.items) == ("cancelled", 3)
    assert not warmers_of(cache)["long"].running
    assert _runs(cache) == {("long", "cancelled"): 1.0}
    assert bus.flush()
    assert [e.topic for e in seen][-1] == "cache.warm.cancelled"
    assert run_warmers(cache, ["next"])[0].outcome == "ok"  # the run was released


async def test_stop_reaches_async_generators_and_a_stopped_run_starts_nothing(cache: Cache) -> None:
    @warmer(cache, "agen")
    async def agen() -> AsyncIterator[int]:
        for done in range(1, 10):
            yield done

    count = iter(range(100))
    with pytest.raises(WarmCancelled) as raised:
        await arun_warmers(cache, stop=lambda: next(count) >= 3)  # asked before the warmer, then per yield
    assert raised.value.items == 3  # stop() said no before the warmer and after yields 1 and 2
    with pytest.raises(WarmCancelled) as raised:
        await cache.awarm(stop=lambda: True)
    assert raised.value.items == 0
    last = warmers_of(cache)["agen"].last
    assert last is not None
    assert (last.outcome, last.items) == ("cancelled", 3)
