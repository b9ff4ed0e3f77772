"""Cache warmers as durable jobs (``warm_job``), on SQLite and PostgreSQL, run by a real worker."""

from __future__ import annotations

import asyncio
import gc
import threading
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from buttress.cache import Cache, MemoryBackend, warmers_of
from buttress.clock import FakeClock
from buttress.config import JobsSettings
from buttress.db import Database
from buttress.errors import ValidationError
from buttress.events import Event, EventBus
from buttress.jobs import Jobs, JobStatus, Registry, Scheduler, WarmTask, schedule_warmer, warm_job
from buttress.resilience import Backoff, Retry

WAIT = 20.0  # seconds a test waits for a job it expects to finish; never reached when things work
T0 = 1_800_000_000.0  # the jobs' clock starts here (a FakeClock: only the worker's polling is real time)


@pytest.fixture(autouse=True)
def _forget_dead_caches() -> Iterator[None]:
    """Collect each test's caches, so no other test sees their warmers."""
    yield
    gc.collect()


@pytest.fixture
def database(jobs_url: str) -> Iterator[Database]:
    db = Database(jobs_url)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def bus() -> Iterator[EventBus]:
    with EventBus() as events:
        yield events


@pytest.fixture
def registry() -> Registry:
    return Registry()


def _jobs(db: Database, registry: Registry, bus: EventBus | None = None, **settings: object) -> Jobs:
    options: dict[str, object] = {
        "poll_interval": 0.01,
        "cancel_poll_interval": 0.02,
        "grace": 5.0,
        **settings,
    }
    clock = FakeClock(start_time=T0)
    return Jobs(db, settings=JobsSettings.model_validate(options), clock=clock, registry=registry, events=bus)


@pytest.fixture
def jobs(database: Database, registry: Registry, bus: EventBus) -> Jobs:
    return _jobs(database, registry, bus)


@pytest.fixture
def cache() -> Cache:
    clock = FakeClock()
    return Cache(MemoryBackend(clock=clock), clock=clock, events=EventBus())


def _name(prefix: str) -> str:
    """A warmer name no other test (or test run sharing the PostgreSQL database) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _burst(jobs: Jobs, concurrency: int = 2) -> None:
    asyncio.run(jobs.worker(concurrency=concurrency).run(burst=True))


def test_a_deferred_warm_runs_on_a_worker_and_reports_its_progress(
    jobs: Jobs, registry: Registry, cache: Cache, bus: EventBus
) -> None:
    name = _name("popular")

    @cache.warmer(name)
    def popular() -> Iterator[tuple[int, int]]:
        for done, artist in enumerate(["a", "b", "c", "d"], 1):
            cache.set(f"artist:{artist}", artist)
            yield done, 4

    task = warm_job(name, registry=registry)
    assert isinstance(task, WarmTask)
    assert task.name == f"cache.warm:{name}"
    assert registry.task(task.name) is task
    seen: list[Event] = []
    handle = task.configure(jobs=jobs).defer()
    bus.subscribe(f"jobs.{handle.id}.progress", seen.append)
    _burst(jobs)

    info = handle.info()
    assert info.status is JobStatus.SUCCEEDED
    assert info.result["items"] == 4
    assert [(w["name"], w["outcome"], w["items"]) for w in info.result["warmers"]] == [(name, "ok", 4)]
    assert (info.progress, info.message) == (1.0, f"{name}: finished after 4 items")
    assert info.queue == "cache"
    assert [cache.get(f"artist:{a}") for a in "abcd"] == ["a", "b", "c", "d"]
    assert bus.flush()
    reported = [(e.payload["progress"], e.payload["message"]) for e in seen]
    assert reported == [
        (0.0, f"{name}: started"),
        (0.25, f"{name}: 1/4"),
        (0.5, f"{name}: 2/4"),
        (0.75, f"{name}: 3/4"),
        (1.0, f"{name}: 4/4"),
        (1.0, f"{name}: finished after 4 items"),
    ]
    last = warmers_of(cache)[name].last  # the cache's own bookkeeping, as for any run
    assert last is not None
    assert (last.outcome, last.items) == ("ok", 4)


def test_defers_from_two_processes_fold_into_one_run(
    database: Database, registry: Registry, cache: Cache
) -> None:
    name = _name("once")
    runs: list[int] = []

    @cache.warmer(name)
    def once() -> None:
        runs.append(1)

    task = warm_job(name, registry=registry)
    here = _jobs(database, registry)
    other_db = Database(database.urls.sync.render_as_string(hide_password=False))
    try:
        there = _jobs(other_db, registry)  # a second process: its own engine and Jobs
        first = task.configure(jobs=here).defer()
        second = task.configure(jobs=there).defer()
        third = task.configure(jobs=here).defer()
        assert first.id == second.id == third.id
        _burst(here)
        assert first.status() is JobStatus.SUCCEEDED
        assert runs == [1]
        again = task.configure(jobs=there).defer()  # the run is over: a new defer is a new run
        assert again.id != first.id
        _burst(there)
        assert again.status() is JobStatus.SUCCEEDED
        assert runs == [1, 1]
        assert len(here.list(task=task.name, limit=10)) == 2
    finally:
        other_db.close()


def test_cancelling_a_running_warm_stops_the_warmer_at_its_next_yield(
    jobs: Jobs, registry: Registry, cache: Cache
) -> None:
    name = _name("long")
    warming = threading.Event()
    steps: list[int] = []

    @cache.warmer(name)
    def long() -> Iterator[int]:
        try:
            for done in range(1, 1_000_000):
                steps.append(done)
                warming.set()
                yield done
                threading.Event().wait(0.002)  # an upstream call's worth of work
        finally:
            steps.append(-1)

    handle = warm_job(name, registry=registry).configure(jobs=jobs).defer()
    with jobs.worker().running():
        assert warming.wait(WAIT)
        assert handle.cancel() is JobStatus.RUNNING
        info = handle.wait(WAIT)
    assert info.status is JobStatus.CANCELLED
    assert steps[-1] == -1  # the generator was closed
    assert len(steps) < 1_000  # stopped early, not run to its end
    last = warmers_of(cache)[name].last
    assert last is not None
    assert last.outcome == "cancelled"
    assert not warmers_of(cache)[name].running


def test_a_failing_warmer_is_retried_and_dies_when_its_attempts_are_spent(
    jobs: Jobs, registry: Registry, cache: Cache
) -> None:
    flaky, broken = _name("flaky"), _name("broken")
    calls = {flaky: 0, broken: 0}

    @cache.warmer(flaky)
    def flaky_warmer() -> None:
        calls[flaky] += 1
        if calls[flaky] == 1:
            raise ConnectionError("upstream refused")
        cache.set("flaky", 1)

    @cache.warmer(broken)
    def broken_warmer() -> None:
        calls[broken] += 1
        raise ConnectionError("upstream is down")

    now = Retry(attempts=3, backoff=Backoff.constant(0.0), on=Exception)
    recovered = warm_job(flaky, registry=registry, retry=now).configure(jobs=jobs).defer()
    dead = warm_job(broken, registry=registry, retry=now).configure(jobs=jobs).defer()
    _burst(jobs, concurrency=1)  # one cache runs one warm at a time: a second at once would be a conflict

    info = recovered.info()
    assert (info.status, info.attempts, calls[flaky]) == (JobStatus.SUCCEEDED, 2, 2)
    assert cache.get("flaky") == 1
    info = dead.info()
    assert (info.status, info.attempts, calls[broken]) == (JobStatus.DEAD, 3, 3)
    assert info.error == f"WarmFailed: cache warmer failed: {broken}: ConnectionError: upstream is down"


def test_a_warmer_the_worker_does_not_know_fails_at_once(jobs: Jobs, registry: Registry) -> None:
    name = _name("nowhere")  # no cache in this process registers it
    handle = warm_job(name, registry=registry).configure(jobs=jobs).defer()
    _burst(jobs)
    info = handle.info()
    assert (info.status, info.attempts) == (JobStatus.FAILED, 1)
    assert info.error is not None
    assert f"no cache warmer named '{name}'" in info.error


def test_a_warm_job_that_meets_a_run_in_progress_in_its_process_is_retried(
    jobs: Jobs, registry: Registry, cache: Cache
) -> None:
    name = _name("busy")
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    @cache.warmer(name)
    def busy() -> None:
        runs.append(threading.current_thread().name)
        started.set()
        release.wait(WAIT)

    startup = cache.warm  # the in-process runner, e.g. startup warming, holds the cache's run
    thread = threading.Thread(target=startup, daemon=True)
    thread.start()
    assert started.wait(WAIT)
    retry = Retry(attempts=2, backoff=Backoff.constant(0.0), on=Exception)
    handle = warm_job(name, registry=registry, retry=retry).configure(jobs=jobs).defer()
    _burst(jobs)  # both attempts meet the run in progress
    info = handle.info()
    assert info.status is JobStatus.DEAD
    assert info.error is not None
    assert info.error.startswith("ConflictError: a cache warm run is already in progress")
    release.set()
    thread.join(WAIT)
    assert jobs.retry(handle.id) is JobStatus.QUEUED  # retried by hand once the cache is free
    _burst(jobs)
    assert handle.status() is JobStatus.SUCCEEDED
    assert len(runs) == 2


def test_the_all_warmers_job_reports_progress_over_the_whole_run(
    jobs: Jobs, registry: Registry, cache: Cache, bus: EventBus
) -> None:
    first, second = _name("first"), _name("second")

    @cache.warmer(first)
    def one() -> Iterator[tuple[int, int]]:
        yield 1, 2
        yield 2, 2

    @cache.warmer(second)
    def two() -> Iterator[int]:
        yield 5  # no total: the fraction stays, the message counts

    task = warm_job(registry=registry, cache=cache)
    assert task.name == "cache.warm"
    handle = task.configure(jobs=jobs).defer()
    seen: list[Event] = []
    bus.subscribe(f"jobs.{handle.id}.progress", seen.append)
    _burst(jobs)
    info = handle.info()
    assert info.status is JobStatus.SUCCEEDED
    assert [(w["name"], w["items"]) for w in info.result["warmers"]] == [(first, 2), (second, 5)]
    assert info.result["items"] == 7
    assert bus.flush()
    assert [(e.payload["progress"], e.payload["message"]) for e in seen] == [
        (0.0, f"{first}: started"),
        (0.25, f"{first}: 1/2"),
        (0.5, f"{first}: 2/2"),
        (0.5, f"{first}: finished after 2 items"),
        (0.5, f"{second}: started"),
        (0.5, f"{second}: 5 items"),
        (1.0, f"{second}: finished after 5 items"),
    ]


def test_a_timeout_stops_the_warmer_and_counts_as_a_failed_attempt(
    jobs: Jobs, registry: Registry, cache: Cache
) -> None:
    name = _name("slow")

    @cache.warmer(name)
    def slow() -> Iterator[int]:
        for done in range(1, 1_000_000):
            yield done
            threading.Event().wait(0.002)

    task = warm_job(name, registry=registry, timeout=0.05, retry=1)
    handle = task.configure(jobs=jobs).defer()
    _burst(jobs)
    info = handle.info()
    assert info.status is JobStatus.DEAD
    assert info.error == "TimeoutError: timed out after 0.05 s"
    last = warmers_of(cache)[name].last
    assert last is not None
    assert last.outcome == "cancelled"


def test_calling_the_job_type_warms_here_and_eager_mode_runs_it_in_the_caller(
    database: Database, registry: Registry, cache: Cache
) -> None:
    name = _name("inline")

    @cache.warmer(name)
    def inline() -> Iterator[int]:
        cache.set("inline", 1)
        yield 1

    task = warm_job(name, registry=registry)
    assert task()["items"] == 1  # no job, no worker
    assert cache.get("inline") == 1
    eager = _jobs(database, registry, eager=True)
    handle = task.configure(jobs=eager).defer()
    assert handle.status() is JobStatus.SUCCEEDED
    assert handle.result()["warmers"][0]["name"] == name


def test_warm_job_returns_one_job_type_per_warmer_and_checks_its_arguments(registry: Registry) -> None:
    name = _name("same")
    task = warm_job(name, registry=registry, priority=3)
    assert warm_job(name, registry=registry, priority=3) is task
    assert task.priority == 3
    assert task.concurrency == 1  # one run at a time across every worker
    assert task.configure().key == task.name  # defers fold into the active run
    assert task.configure(key="mine").key == "mine"
    with pytest.raises(ValidationError, match="already defined with other options"):
        warm_job(name, registry=registry, priority=4)
    for bad in ("", " padded", 3):
        with pytest.raises(ValidationError, match="warmer must be the name"):
            warm_job(bad, registry=registry)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="attempts must be"):
        warm_job(_name("x"), registry=registry, retry=0)


def test_async_warmers_run_in_the_job_and_cache_picks_one_cache(
    jobs: Jobs, registry: Registry, cache: Cache, database: Database
) -> None:
    name = _name("async")
    other = Cache(MemoryBackend(clock=FakeClock()), clock=FakeClock(), events=EventBus())

    @cache.warmer(name)
    async def fill_this() -> None:
        await cache.aset("filled", "this")

    @other.warmer(name)
    async def fill_other() -> AsyncIterator[tuple[int, int]]:
        await other.aset("filled", "other")
        yield 1, 1

    handle = warm_job(name, registry=registry, cache=other).configure(jobs=jobs).defer()
    _burst(jobs)
    assert handle.status() is JobStatus.SUCCEEDED
    assert (other.get("filled"), cache.get("filled")) == ("other", None)  # only the cache it was given
    elsewhere = Registry()  # another program: the same warmer name, no cache pinned
    anywhere = _jobs(database, elsewhere)
    both = warm_job(name, registry=elsewhere).configure(jobs=anywhere).defer()
    _burst(anywhere)
    assert both.result(timeout=WAIT)["items"] == 2  # no cache given: every cache with that warmer
    assert cache.get("filled") == "this"


# -- schedules ----------------------------------------------------------------------------------------------


def test_a_scheduled_warmer_fires_once_per_tick_across_schedulers(
    database: Database, registry: Registry, cache: Cache
) -> None:
    name = _name("nightly")
    runs: list[int] = []

    @cache.warmer(name)
    def nightly() -> Iterator[int]:
        runs.append(1)
        yield 3

    task = schedule_warmer(name, every=60, registry=registry)
    assert registry.task(f"cache.warm:{name}") is task
    entry = registry.schedules[task.name]
    assert (entry.task, entry.queue, entry.catch_up, entry.overlap) == (task.name, "cache", "once", "skip")
    clock = FakeClock(start_time=T0)
    other_db = Database(database.urls.sync.render_as_string(hide_password=False))  # a second process
    try:
        jobs = [Jobs(db, clock=clock, registry=registry) for db in (database, other_db)]
        schedulers = [Scheduler(each) for each in jobs]
        assert [s.tick().created for s in schedulers] == [0, 0]  # reconciled, anchored now
        clock.advance(60)
        assert sorted(s.tick().created for s in schedulers) == [0, 1]  # one fire, one job
        clock.advance(30)
        assert [s.tick().created for s in schedulers] == [0, 0]  # nothing due
        _burst(jobs[0])
        assert runs == [1]
        [info] = jobs[1].list(task=task.name)
        assert (info.status, info.schedule, info.result["items"]) == (JobStatus.SUCCEEDED, task.name, 3)
    finally:
        other_db.close()


def test_schedule_warmer_takes_the_schedule_options(registry: Registry) -> None:
    name = _name("cron")
    task = schedule_warmer(
        name, cron="*/15 * * * *", tz="Europe/London", name="warm-quarter", catch_up="skip", registry=registry
    )
    also = schedule_warmer(name, at=["06:00", "18:00"], name="warm-twice", overlap="allow", registry=registry)
    assert also is task  # one job type, two schedules
    quarter, twice = registry.schedules["warm-quarter"], registry.schedules["warm-twice"]
    assert (quarter.task, quarter.catch_up) == (task.name, "skip")
    assert (twice.task, twice.overlap) == (task.name, "allow")
    with pytest.raises(ValidationError):
        schedule_warmer(name, registry=registry)  # no cron, every or at
