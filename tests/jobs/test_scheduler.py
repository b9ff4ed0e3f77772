"""The scheduler on SQLite and PostgreSQL with an injected clock: exactly once, catch-up, overlap,
reconciliation of changed and removed schedules, and surviving a database outage."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.jobs._sched_db import rows, upgraded
from tests.jobs.conftest import fresh_database

from buttress.clock import FakeClock
from buttress.config import JobsSettings
from buttress.db import Database
from buttress.health_types import CheckResult
from buttress.jobs import Jobs, JobStatus, Registry, Scheduler, schedule
from buttress.jobs._plans import FetchRequest, Plan, Step, fetch_plan
from buttress.jobs._schedule_plans import fire_plan, load_plan
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import Retry

T0 = 1_800_000_000.0  # the clock's start: schedules reconciled at T0 are anchored there


@pytest.fixture
def url(jobs_url: str) -> str:
    """A fresh SQLite file or PostgreSQL database (``jobs_url``) with the jobs tables."""
    return upgraded(jobs_url)


class World:
    """Processes sharing one database and one clock: each ``jobs()`` is a separate Database and Jobs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clock = FakeClock(start_time=T0)
        self._opened: list[Database] = []

    def jobs(self, registry: Registry) -> Jobs:
        db = Database(self.url)
        self._opened.append(db)
        return Jobs(db, settings=JobsSettings(auto_migrate=False), clock=self.clock, registry=registry)

    def scheduler(self, registry: Registry, **options: object) -> Scheduler:
        return Scheduler(self.jobs(registry), **options)  # type: ignore[arg-type]

    def close(self) -> None:
        for db in self._opened:
            db.close()

    def jobs_of(self, name: str) -> list[tuple[object, ...]]:
        return rows(
            self.url,
            "SELECT id, fire_at, status, created_at FROM buttress_jobs WHERE schedule = :n ORDER BY id",
            n=name,
        )

    def ticks_of(self, name: str) -> list[tuple[object, ...]]:
        return rows(
            self.url,
            "SELECT fire_at, job_id, outcome FROM buttress_job_ticks WHERE schedule = :n ORDER BY fire_at",
            n=name,
        )


@pytest.fixture
def world(url: str) -> Iterator[World]:
    made = World(url)
    yield made
    made.close()


def every(seconds: float, name: str, registry: Registry, **options: object) -> None:
    def noop() -> None:
        return None

    noop.__qualname__ = name
    schedule(every=seconds, name=name, registry=registry, **options)(noop)  # type: ignore[arg-type]


# -- exactly once -------------------------------------------------------------------------------------------


def test_two_schedulers_racing_on_one_database_create_one_job_per_fire(world: World) -> None:
    registry = Registry()
    every(10, "race", registry, overlap="allow", catch_up="all")
    first, second = world.scheduler(registry), world.scheduler(registry)
    first.reconcile()
    second.reconcile()  # the same definitions: nothing changes, the anchor stays
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(scheduler: Scheduler) -> None:
        try:
            barrier.wait(5)
            scheduler.tick()
        except BaseException as exc:  # reported below
            errors.append(exc)

    for _ in range(12):
        world.clock.advance(5)
        threads = [threading.Thread(target=run, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors
    jobs = world.jobs_of("race")
    assert [row[1] for row in jobs] == [T0 + 10 * k for k in range(1, 7)]  # every fire, once, no gap
    ticks = world.ticks_of("race")
    assert [(t[0], t[1], t[2]) for t in ticks] == [(job[1], job[0], "created") for job in jobs]
    stored = rows(world.url, "SELECT anchor, last_fire_at, next_fire_at FROM buttress_job_schedules")
    assert stored == [(T0, T0 + 60, T0 + 70)]


def test_async_passes_fire_the_same_way(world: World) -> None:
    registry = Registry()
    every(10, "async", registry, overlap="allow")

    async def scenario() -> list[int]:
        a, b = world.scheduler(registry), world.scheduler(registry)
        await a.areconcile()
        created = []
        for _ in range(3):
            world.clock.advance(10)
            done = await asyncio.gather(a.atick(), b.atick())
            created.append(sum(p.created for p in done))
        return created

    assert asyncio.run(scenario()) == [1, 1, 1]
    assert [row[1] for row in world.jobs_of("async")] == [T0 + 10, T0 + 20, T0 + 30]


# -- catch-up after downtime --------------------------------------------------------------------------------


def test_catch_up_policies_after_ten_minutes_down(world: World) -> None:
    registry = Registry()
    for policy in ("skip", "once", "all"):
        every(60, policy, registry, catch_up=policy, overlap="allow", catch_up_window=3600, misfire_grace=60)
    every(60, "all-short-window", registry, catch_up="all", overlap="allow", catch_up_window=300)
    scheduler = world.scheduler(registry)
    scheduler.reconcile()
    world.clock.advance(60)
    scheduler.tick()  # every schedule fires T0+60
    world.clock.advance(690)  # down eleven minutes: now T0+750, the latest fire (T0+720) is 30 s old
    scheduler.tick()
    fired = {
        name: [row[1] for row in world.jobs_of(name)] for name in ("skip", "once", "all", "all-short-window")
    }
    assert fired["skip"] == [T0 + 60, T0 + 720]  # within the 60 s grace
    assert fired["once"] == [T0 + 60, T0 + 720]  # one run for the whole outage
    assert fired["all"] == [T0 + 60 * k for k in range(1, 13)]  # every missed fire
    assert fired["all-short-window"] == [T0 + 60] + [T0 + 60 * k for k in range(8, 13)]  # only 300 s back


def test_skip_does_not_replay_a_fire_older_than_the_grace(world: World) -> None:
    registry = Registry()
    every(600, "rare", registry, catch_up="skip", misfire_grace=60)
    scheduler = world.scheduler(registry)
    scheduler.reconcile()
    world.clock.advance(600 + 90)  # the T0+600 fire is 90 s old when the scheduler is back
    scheduler.tick()
    assert world.jobs_of("rare") == []
    world.clock.advance(600 - 90)
    scheduler.tick()
    assert [row[1] for row in world.jobs_of("rare")] == [T0 + 1200]


# -- overlap ------------------------------------------------------------------------------------------------


def test_overlap_skip_records_the_tick_and_fires_again_once_the_run_ended(world: World) -> None:
    registry = Registry()
    every(10, "slow", registry, overlap="skip")
    scheduler = world.scheduler(registry)
    scheduler.reconcile()
    world.clock.advance(10)
    scheduler.tick()
    world.clock.advance(10)
    done = scheduler.tick()
    assert done.fired["slow"].skipped == [T0 + 20]
    worker = scheduler.jobs.worker(scheduler=False)
    asyncio.run(worker.run(burst=True))  # the first run ends
    world.clock.advance(10)
    scheduler.tick()
    assert [(t[0], t[2]) for t in world.ticks_of("slow")] == [
        (T0 + 10, "created"),
        (T0 + 20, "skipped"),
        (T0 + 30, "created"),
    ]
    assert world.ticks_of("slow")[1][1] is None  # a skipped tick has no job
    assert [(row[1], row[2]) for row in world.jobs_of("slow")] == [
        (T0 + 10, "succeeded"),
        (T0 + 30, "queued"),
    ]


def test_overlap_cancel_cancels_the_previous_run_then_starts_the_new(world: World) -> None:
    registry = Registry()
    every(10, "latest-only", registry, overlap="cancel")
    scheduler = world.scheduler(registry)
    jobs = scheduler.jobs
    scheduler.reconcile()
    world.clock.advance(10)
    scheduler.tick()
    world.clock.advance(10)
    scheduler.tick()  # the first, still queued, is cancelled: it will never run
    assert [row[2] for row in world.jobs_of("latest-only")] == ["cancelled", "queued"]
    # a running previous run is asked to stop (its worker sees cancel_requested)
    task = registry.schedules["latest-only"].task
    request = FetchRequest(worker="w1", queues=("default",), tasks=(task,), slots=1, lease=30)
    now = world.clock.time()
    leased = jobs.store.run(lambda: fetch_plan(request, [], now, jobs.store.dialect))
    assert len(leased) == 1
    world.clock.advance(10)
    done = scheduler.tick()
    assert done.fired["latest-only"].cancelled == [leased[0].id]
    running = rows(
        world.url, "SELECT status, cancel_requested FROM buttress_jobs WHERE id = :i", i=leased[0].id
    )
    assert running == [("running", 1)]
    assert [row[2] for row in world.jobs_of("latest-only")] == ["cancelled", "running", "queued"]


def test_a_full_queue_records_the_tick_and_stores_no_job(world: World) -> None:
    registry = Registry()
    registry.define_queue("tiny", max_size=1)
    every(10, "bounded", registry, overlap="allow", queue="tiny")
    scheduler = world.scheduler(registry)
    scheduler.reconcile()
    for _ in range(2):
        world.clock.advance(10)
        scheduler.tick()
    assert [(t[0], t[2]) for t in world.ticks_of("bounded")] == [
        (T0 + 10, "created"),
        (T0 + 20, "queue_full"),
    ]
    assert len(world.jobs_of("bounded")) == 1


# -- reconciliation -----------------------------------------------------------------------------------------


def test_a_changed_expression_never_fires_again(world: World) -> None:
    old = Registry()
    every(60, "report", old, overlap="allow")
    running_old = world.scheduler(old)  # an old process that keeps running through the deploy
    running_old.reconcile()
    world.clock.advance(60)
    running_old.tick()
    world.clock.advance(10)  # T0+70: the new code is deployed
    new = Registry()
    every(45, "report", new, overlap="allow")
    deployed = world.scheduler(new)
    assert deployed.reconcile().changed == ["report"]
    for _ in range(40):  # ten minutes, both processes passing every 15 s
        world.clock.advance(15)
        running_old.tick()
        deployed.tick()
    fires = [row[1] for row in world.jobs_of("report")]
    assert fires[0] == T0 + 60
    assert fires[1:] == [T0 + 70 + 45 * k for k in range(1, len(fires))]  # only the new expression
    assert not {T0 + 60 * k for k in range(2, 12)} & set(fires)  # 0 runs of the old one
    stored = rows(world.url, "SELECT spec, anchor FROM buttress_job_schedules WHERE name = 'report'")
    assert stored == [("every 45s", T0 + 70)]


def test_a_fire_computed_from_a_replaced_row_writes_nothing(world: World) -> None:
    old = Registry()
    every(60, "guarded", old)
    scheduler = world.scheduler(old)
    scheduler.reconcile()
    jobs = scheduler.jobs
    (stale_row,) = jobs.store.run(load_plan, write=False)
    new = Registry()
    every(30, "guarded", new)
    world.scheduler(new).reconcile()
    world.clock.advance(60)
    now = world.clock.time()
    fired = jobs.store.run(
        lambda: fire_plan(
            stale_row,
            [T0 + 60],
            T0 + 120,
            now,
            make_job=scheduler._new_job(stale_row),
            bounds={},
            result_ttl=60.0,
            dialect=jobs.store.dialect,
        )
    )
    assert fired.stale
    assert world.ticks_of("guarded") == []
    assert world.jobs_of("guarded") == []


def test_a_removed_schedule_is_deactivated_and_comes_back_without_replay(world: World) -> None:
    both = Registry()
    every(10, "kept", both, overlap="allow")
    every(10, "dropped", both, overlap="allow")
    world.scheduler(both).reconcile()
    only_kept = Registry()
    every(10, "kept", only_kept, overlap="allow")
    scheduler = world.scheduler(only_kept)
    assert scheduler.reconcile().deactivated == ["dropped"]
    world.clock.advance(10)
    scheduler.tick()
    assert len(world.jobs_of("kept")) == 1
    assert world.jobs_of("dropped") == []
    # a process that defines no schedule at all (a worker importing other jobs) switches nothing off
    assert world.scheduler(Registry()).reconcile().deactivated == []
    world.clock.advance(3600)
    back = world.scheduler(both)
    assert back.reconcile().reactivated == ["dropped"]
    back.tick()
    world.clock.advance(10)
    back.tick()
    assert [row[1] for row in world.jobs_of("dropped")] == [
        T0 + 3610 + 10
    ]  # the hour it was off: not replayed


def test_the_table_records_the_next_fire(world: World) -> None:
    registry = Registry()
    schedule(at=["09:00", "21:00"], tz="Europe/London", name="twice", registry=registry)(lambda: None)
    scheduler = world.scheduler(registry)
    scheduler.reconcile()
    scheduler.tick()
    (row,) = rows(world.url, "SELECT spec, next_fire_at, last_fire_at, active FROM buttress_job_schedules")
    assert row[0] == "at 09:00,21:00 Europe/London"
    assert row[1] == scheduler.registry.schedules["twice"].spec.next_fire(T0)
    assert row[2] is None
    assert row[3] == 1


# -- outage -------------------------------------------------------------------------------------------------


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database with the jobs tables, dropped afterwards."""
    yield from (upgraded(made) for made in fresh_database(request, tmp_path, "postgresql"))


def test_the_loop_survives_a_database_outage_and_catches_up(pg_url: str) -> None:
    from tests.test_events_redis import TcpProxy

    direct = pg_url
    db = Database(direct)
    host, port = db.urls.sync.host or "127.0.0.1", db.urls.sync.port or 5432
    db.close()
    proxy = TcpProxy(host, port)
    proxy.start()
    proxied = db.urls.sync.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    through = Database(proxied, retry=Retry(on=ConnectionError, attempts=2))  # fail a pass fast
    clock = FakeClock(start_time=T0, auto_advance=False)
    registry = Registry()
    every(1, "beat", registry, overlap="allow", catch_up="all")
    jobs = Jobs(through, settings=JobsSettings(auto_migrate=False), clock=clock, registry=registry)
    scheduler = Scheduler(jobs)
    loop = threading.Thread(target=scheduler.run, daemon=True)
    loop.start()
    try:

        def one_pass() -> None:
            """Wake the parked loop at its deadline and wait until that pass has ended."""
            clock.wait_for_sleepers(1, timeout=30)
            before = scheduler.passes + scheduler.errors
            clock.advance(clock.sleeps[-1] + 1e-6)  # past the deadline despite float rounding
            deadline = time.monotonic() + 30
            while scheduler.passes + scheduler.errors == before:
                assert time.monotonic() < deadline, "the scheduler pass did not end"
                threading.Event().wait(0.002)

        for _ in range(5):
            one_pass()
        assert scheduler.check().status == "pass"
        proxy.stop()  # the database is gone: connections cut, new ones refused
        outage_start = clock.time()
        while clock.time() - outage_start < 50:
            one_pass()
        down = scheduler.check()
        assert scheduler.consecutive_errors >= 5
        assert down.status == "fail"
        assert "BackendUnavailable" in down.output
        assert max(clock.sleeps[-5:]) <= 5.0  # backed off, capped
        proxy.start()
        for _ in range(10):
            one_pass()
        clock.wait_for_sleepers(1, timeout=30)
        assert scheduler.check() == CheckResult("pass", observed_value=0.0, observed_unit="s")
        assert scheduler.consecutive_errors == 0
    finally:
        scheduler.stop()
        clock.advance(10)
        loop.join(30)
        proxy.stop()
        through.close()
    fires = [float(str(row[0])) for row in rows(direct, "SELECT fire_at FROM buttress_jobs ORDER BY fire_at")]
    assert fires == [T0 + k for k in range(1, len(fires) + 1)]  # no fire lost to the outage, none twice
    assert fires[-1] >= T0 + 55
    assert scheduler.errors >= 5


# -- the worker runs one ------------------------------------------------------------------------------------


def test_a_worker_runs_a_scheduler_unless_told_not_to(tmp_path: Path) -> None:
    made = upgraded(f"sqlite:///{tmp_path / 'worker.db'}")
    registry = Registry()
    ran = threading.Event()
    count = [0]

    def tick() -> None:
        count[0] += 1
        if count[0] >= 2:
            ran.set()

    schedule(every=0.2, name="fast", registry=registry)(tick)
    db = Database(made)
    jobs = Jobs(db, settings=JobsSettings(auto_migrate=False), registry=registry)
    try:
        assert jobs.worker(scheduler=False).scheduler is None
        worker = jobs.worker()
        assert worker.scheduler is not None
        with worker.running():
            assert ran.wait(20)  # two fires became jobs and ran, with no one deferring anything
        assert worker.scheduler.passes >= 1
        assert worker.scheduler.check().status == "pass"
    finally:
        db.close()
    statuses = rows(made, "SELECT status FROM buttress_jobs WHERE schedule = 'fast' ORDER BY id")
    assert statuses[:2] == [(JobStatus.SUCCEEDED.value,), (JobStatus.SUCCEEDED.value,)]


# -- upkeep, isolation, metrics -----------------------------------------------------------------------------


def test_old_ticks_are_pruned_and_their_fires_never_come_back(world: World) -> None:
    registry = Registry()
    every(10, "pruned", registry, overlap="allow", catch_up="all")
    scheduler = world.scheduler(registry, tick_retention=25.0)
    scheduler.reconcile()
    for _ in range(6):
        world.clock.advance(10)
        scheduler.tick()
    world.clock.advance(60)  # the next prune is due: the ticks of fires over 25 s old go
    scheduler.tick()
    kept = [tick[0] for tick in world.ticks_of("pruned")]
    assert kept == [T0 + 100, T0 + 110, T0 + 120]
    # a second scheduler that read the row long ago cannot bring back a pruned fire: the row guards it
    late = world.scheduler(registry)
    late.tick()
    fires = [row[1] for row in world.jobs_of("pruned")]
    assert fires == [T0 + 10 * k for k in range(1, 13)]


def test_a_schedule_that_cannot_be_read_does_not_stop_the_others(world: World) -> None:
    registry = Registry()
    every(10, "healthy", registry, overlap="allow")
    every(10, "broken", registry, overlap="allow")
    scheduler = world.scheduler(registry)
    scheduler.reconcile()
    jobs = scheduler.jobs
    # a time zone this machine's tzdata does not know (say, written by a newer deploy)
    jobs.store.run(lambda: _set_spec("broken", "cron 0 9 * * * Mars/Olympus"))
    world.clock.advance(10)
    done = scheduler.tick()
    assert [row[1] for row in world.jobs_of("healthy")] == [T0 + 10]
    assert world.jobs_of("broken") == []
    assert "broken" not in done.fired
    health = scheduler.check()
    assert health.status == "warn"
    assert "broken" in health.output
    assert "Mars/Olympus" in health.output


def _set_spec(name: str, spec: str) -> Plan[None]:
    yield Step(
        text("UPDATE buttress_job_schedules SET spec = :spec WHERE name = :name"),
        {"spec": spec, "name": name},
    )


def test_fires_and_lag_are_measured(world: World) -> None:
    metrics = MetricsRegistry()
    registry = Registry()
    every(10, "measured", registry, overlap="skip")
    scheduler = world.scheduler(registry, metrics=metrics)
    scheduler.reconcile()
    world.clock.advance(10.25)
    scheduler.tick()
    world.clock.advance(10)
    scheduler.tick()  # the first run is still queued: skipped
    exported = metrics.render_prometheus().decode()
    assert 'buttress_jobs_schedule_fires_total{outcome="created",schedule="measured"} 1.0' in exported
    assert 'buttress_jobs_schedule_fires_total{outcome="skipped",schedule="measured"} 1.0' in exported
    assert "buttress_jobs_schedule_lag_seconds_count 1.0" in exported
    assert "buttress_jobs_schedule_lag_seconds_sum 0.25" in exported
