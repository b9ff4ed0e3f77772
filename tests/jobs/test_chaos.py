"""Workers that crash, freeze and lose their database, as real processes on SQLite and PostgreSQL.

The worker processes run ``tests/jobs/_proc_worker.py`` (``Jobs(...).worker(...).run_sync()``) with a
2-second lease, so a dead worker's jobs come back within seconds. Waiting is always a deadline loop that
fails the test (:func:`wait_for`), never a bare sleep.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests._ports import free_port
from tests.jobs import _proc_jobs as jobs_module
from tests.jobs._procs import Procs, procs, wait_for
from tests.jobs._subject import aiosqlite_threads_ended

from buttress.clock import FakeClock
from buttress.config import JobsSettings
from buttress.db import Database
from buttress.errors import BackendUnavailable
from buttress.jobs import Jobs, JobStatus

__all__ = ["procs"]

CHAOS_JOBS = 10_000
CHAOS_DEADLINE = 150  # about 25 s idle, 50-75 s with the machine's two cores shared by other test runs
LEASE = 2.0


def _succeeded(harness: Procs) -> int:
    return int(harness.scalar("SELECT count(*) FROM buttress_jobs WHERE status = 'succeeded'"))


@pytest.mark.timeout(CHAOS_DEADLINE + 60)
def test_workers_killed_every_few_seconds_lose_no_job_and_complete_none_twice(procs: Procs) -> None:
    """10,000 jobs, three workers; every 1.5-3 s one of them is SIGKILLed and a new one started.

    At-least-once: an attempt killed mid-run (or after its body ended but before its completion was
    stored) runs again, so a job may *execute* more than once. What must never happen:

    - lost: a job that does not end ``succeeded``;
    - completed twice: more than one UPDATE that set a job's status to ``succeeded`` (the trigger of the
      harness counts every one of them in ``proc_completions``, whichever worker sent it);
    - a fenced completion that landed: the completion that stands must carry the job's last lease token
      (the result records the token of the attempt that produced it), so a zombie's late completion
      never overwrote a later attempt.
    """
    task = jobs_module.chaos.configure(jobs=procs.jobs)
    for start in range(0, CHAOS_JOBS, 2_000):
        task.defer_many([(n,) for n in range(start, min(start + 2_000, CHAOS_JOBS))])
    rng = random.Random(15)
    workers = [procs.start(concurrency=10) for _ in range(3)]
    kills: list[tuple[int, float]] = []
    began = time.monotonic()
    deadline = began + CHAOS_DEADLINE
    next_kill = time.monotonic() + rng.uniform(1.5, 3.0)
    while _succeeded(procs) < CHAOS_JOBS:
        assert time.monotonic() < deadline, (
            f"{_succeeded(procs)} of {CHAOS_JOBS} jobs succeeded in {CHAOS_DEADLINE} s"
        )
        if time.monotonic() >= next_kill:
            # a random worker that is up and leasing, while at least one other is too (a worker takes
            # seconds to start on a busy machine: killing the ones still importing would stall the run)
            registered = {pid for (pid,) in procs.rows("SELECT pid FROM buttress_job_workers")}
            ready = [worker for worker in workers if worker.pid in registered]
            if len(ready) >= 2:
                victim = rng.choice(ready)
                workers.remove(victim)
                victim.kill()
                kills.append((victim.pid, time.time()))
                workers.append(procs.start(concurrency=10))
                next_kill = time.monotonic() + rng.uniform(1.5, 3.0)
        time.sleep(0.05)
    elapsed = time.monotonic() - began
    for worker in workers:
        procs.wait_registered(worker)  # a worker still importing has no SIGTERM handler yet
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait_exit(30) == 0, worker.log()

    # 0 lost: every job is there and succeeded
    statuses = dict(procs.rows("SELECT status, count(*) FROM buttress_jobs GROUP BY status"))
    assert statuses == {"succeeded": CHAOS_JOBS}
    # 0 completed twice: exactly one transition to succeeded per job
    per_job = Counter(job_id for (job_id,) in procs.rows("SELECT job_id FROM proc_completions"))
    assert len(per_job) == CHAOS_JOBS
    assert max(per_job.values()) == 1, [job for job, n in per_job.items() if n > 1][:10]
    # the completion that stands is the last lease's, and it came from an attempt that really finished
    log = procs.log()
    finished = {(line.job_id, line.token) for line in log if line.kind == "end"}
    rows = procs.rows("SELECT id, lease_token, result FROM buttress_jobs")
    for job_id, token, result in rows:
        outcome = json.loads(result)
        assert outcome["token"] == token, (job_id, token, outcome)
        assert (job_id, token) in finished, (job_id, token)

    # the kills did hit running jobs, and those came back after the lease
    executions = Counter(line.job_id for line in log if line.kind == "start")
    rerun = sum(1 for n in executions.values() if n > 1)
    attempts = Counter(int(n) for (n,) in procs.rows("SELECT attempts FROM buttress_jobs"))
    assert len(kills) >= 5
    assert rerun > 0
    assert sum(n for a, n in attempts.items() if a > 1) > 0
    reclaims = _reclaim_delays(log, kills)
    assert reclaims, "no kill interrupted a running job"
    assert max(reclaims) < LEASE + 6, reclaims
    print(
        f"\n[chaos {procs.backend}] {CHAOS_JOBS} jobs in {elapsed:.1f} s, {len(kills)} SIGKILLs, "
        f"{sum(executions.values())} executions, {rerun} jobs ran more than once, attempts {dict(attempts)}, "
        f"0 lost, 0 completed twice; reclaim after kill: n={len(reclaims)} "
        f"p50={statistics.median(reclaims):.2f} s max={max(reclaims):.2f} s"
    )


def _reclaim_delays(log: list[jobs_module.Line], kills: list[tuple[int, float]]) -> list[float]:
    """Per job a killed worker was running: seconds from the kill to the job's next start elsewhere."""
    by_pid: dict[int, dict[tuple[int, int], set[str]]] = defaultdict(lambda: defaultdict(set))
    starts: dict[int, list[float]] = defaultdict(list)
    for line in log:
        by_pid[line.pid][(line.job_id, line.token)].add(line.kind)
        if line.kind == "start":
            starts[line.job_id].append(line.at)
    delays = []
    for pid, killed_at in kills:
        for (job_id, _token), kinds in by_pid[pid].items():
            if "end" in kinds:
                continue  # finished before the kill (maybe unrecorded; it runs again at once then)
            later = [at for at in starts[job_id] if at > killed_at]
            if later:
                delays.append(min(later) - killed_at)
    return delays


def test_a_killed_workers_job_is_leased_again_after_the_lease(procs: Procs) -> None:
    """SIGKILL mid-job: the job stays ``running`` until its lease passes, then another worker runs it."""
    doomed = procs.start(concurrency=1)
    procs.wait_registered(doomed)
    handle = jobs_module.sleeps.configure(jobs=procs.jobs).defer(60)
    wait_for(lambda: procs.lines("start", handle.id), 30, "the first worker starting the job")
    rescuer = procs.start(concurrency=1, env={"BUTTRESS_TEST_SLEEP_CAP": "0"})
    procs.wait_registered(rescuer)
    doomed.kill()
    killed_at = time.time()
    assert procs.status(handle.id) == "running"
    info = handle.wait(timeout=LEASE + 10)
    assert info.status.value == "succeeded"
    assert info.result["pid"] == rescuer.pid
    assert info.attempts == 2
    first, second = procs.lines("start", handle.id)
    assert first.pid == doomed.pid
    assert second.pid == rescuer.pid
    reclaim = second.at - killed_at
    assert reclaim < LEASE + 3  # the lease, plus at most one sweep interval and a fetch
    print(f"\n[reclaim {procs.backend}] SIGKILL -> next start {reclaim:.2f} s (lease {LEASE:g} s)")


def _freeze(procs: Procs, proc: object) -> None:
    """SIGSTOP ``proc`` at a moment it holds no transaction (a frozen lock holder would stall the others)."""
    assert hasattr(proc, "signal")
    for _ in range(50):
        proc.signal(signal.SIGSTOP)
        if procs.no_open_transactions(proc.pid):  # type: ignore[attr-defined]
            return
        proc.signal(signal.SIGCONT)
        time.sleep(0.01)
    pytest.fail("could not freeze the worker outside a transaction")


def test_a_frozen_workers_late_completion_is_fenced(procs: Procs) -> None:
    """A worker frozen (SIGSTOP) past its lease comes back (SIGCONT) after another worker re-ran the job:
    its completion of the old attempt is a no-op, and the job keeps the second attempt's result."""
    zombie = procs.start(concurrency=1)
    procs.wait_registered(zombie)
    handle = jobs_module.slow_first.configure(jobs=procs.jobs).defer(3.0)
    wait_for(lambda: procs.lines("start", handle.id), 30, "the first worker starting the job")
    _freeze(procs, zombie)
    rescuer = procs.start(concurrency=1)
    info = handle.wait(timeout=LEASE + 20)
    assert info.status.value == "succeeded"
    assert info.result == {"pid": rescuer.pid, "token": 2, "attempt": 2}
    finished_at = info.finished_at
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait_exit(15) == 0

    zombie.signal(signal.SIGCONT)
    wait_for(
        lambda: [line for line in procs.lines("end", handle.id) if line.pid == zombie.pid],
        10,
        "the zombie finishing",
    )
    # a graceful stop stores every completion the worker still holds: the zombie has sent its completion
    zombie.signal(signal.SIGTERM)
    assert zombie.wait_exit(15) == 0
    after = handle.info()
    assert after.status.value == "succeeded"
    assert after.result == {"pid": rescuer.pid, "token": 2, "attempt": 2}
    assert after.finished_at == finished_at
    assert after.lease_token == 2
    assert procs.rows("SELECT job_id, token FROM proc_completions") == [(handle.id, 2)]
    assert [(line.pid, line.token) for line in procs.lines("end", handle.id)] == [
        (rescuer.pid, 2),
        (zombie.pid, 1),
    ]


def test_a_worker_that_leases_its_own_lost_job_again_stops_the_old_copy(
    procs: Procs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's clock passes the lease before any heartbeat renewed it (an outage longer than the lease,
    a stalled loop): its own sweeper takes the job back and its own fetch leases it again. The copy whose
    lease was lost must stop, as it would in any other worker; left running, it would go on beside the new
    copy, out of reach of cancel. (In process, with an injected clock: the jump is exact.)"""
    monkeypatch.setenv(jobs_module.LOG_ENV, str(procs.logs))
    clock = FakeClock(start_time=time.time())
    jobs = Jobs(procs.db, settings=JobsSettings(lease=LEASE, heartbeat=60, grace=5), clock=clock)
    worker = jobs.worker(concurrency=2, tasks=[jobs_module.waits_async.name])
    with worker.running():
        handle = jobs_module.waits_async.configure(jobs=jobs).defer()
        wait_for(lambda: procs.lines("start", handle.id), 10, "the job starting")
        clock.advance(LEASE + 1)  # no heartbeat comes in between (heartbeat=60)
        wait_for(lambda: len(procs.lines("start", handle.id)) == 2, 10, "the job taken back and leased again")
        assert [line.token for line in procs.lines("start", handle.id)] == [1, 2]
        (stopped,) = wait_for(lambda: procs.lines("cancelled", handle.id), 5, "the old copy stopping")
        assert stopped.token == 1
        assert handle.cancel() is JobStatus.RUNNING  # reaches the new copy
        assert handle.wait(timeout=5).status is JobStatus.CANCELLED
        assert [line.token for line in procs.lines("cancelled", handle.id)] == [1, 2]
    assert worker.state.lost == 1


@pytest.mark.parametrize("procs", ["postgresql"], indirect=True)
def test_a_worker_outlives_its_terminated_database_connections(procs: Procs) -> None:
    """PostgreSQL kills every connection of the database (a failover, a restart): the worker keeps running,
    finishes what it held and picks up jobs deferred afterwards."""
    worker = procs.start(concurrency=4)
    procs.wait_registered(worker)
    quick = jobs_module.quick.configure(jobs=procs.jobs)
    assert quick.defer().wait(timeout=15).status.value == "succeeded"
    running = jobs_module.sleeps.configure(jobs=procs.jobs).defer(1.5)
    wait_for(lambda: procs.lines("start", running.id), 15, "the job starting")
    others = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    for _ in range(3):
        terminated = procs.scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()) AS killed"
        )
        assert terminated >= 1
        procs.db.engine.dispose()  # the test's own pooled connections died too
        wait_for(lambda: procs.scalar(others), 10, "the worker connecting again")
    assert running.wait(timeout=20).status.value == "succeeded"
    handles = quick.defer_many([() for _ in range(20)])
    for handle in handles:
        info = handle.wait(timeout=20)
        assert info.status.value == "succeeded"
        assert info.result["pid"] == worker.pid
    assert worker.alive()
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(15) == 0
    assert "LISTEN connection lost" in worker.log()  # the outages did reach the worker


@pytest.mark.parametrize("procs", ["postgresql"], indirect=True)
def test_a_worker_outlives_an_outage_longer_than_its_lease(procs: Procs) -> None:
    """PostgreSQL refuses every connection to the database for longer than the lease while a job runs. The
    worker keeps running; the job succeeds exactly once; if the job was taken back and leased again, the
    copy whose lease lapsed did not run on beside the new one; jobs deferred afterwards run."""
    worker = procs.start(concurrency=2)
    procs.wait_registered(worker)
    handle = jobs_module.sleeps.configure(jobs=procs.jobs).defer(8.0)
    wait_for(lambda: procs.lines("start", handle.id), 15, "the job starting")
    name = procs.db.engine.url.database
    admin = create_engine(procs.db.engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        )
    down = time.time()
    procs.db.engine.dispose()
    try:
        wait_for(
            lambda: time.time() - down > LEASE + 1.5 and "could not" in worker.log(),
            20,
            "the worker failing to reach its database for longer than the lease",
            every=0.1,
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    info = handle.wait(timeout=30)
    assert info.status is JobStatus.SUCCEEDED
    assert procs.rows("SELECT token FROM proc_completions WHERE job_id = :id", id=handle.id) == [
        (info.lease_token,)
    ]
    copies: dict[int, dict[str, float]] = defaultdict(dict)
    for line in procs.log():
        if line.job_id == handle.id:
            copies[line.token][line.kind] = line.at
    for token, later in copies.items():
        if token > 1:  # leased again: every older copy had ended (or been stopped) before this one started
            for older in (copies[t] for t in copies if t < token):
                assert "end" not in older or older["end"] <= later["start"], copies
                assert "end" in older or "cancelled" in older, copies
    assert worker.alive()
    after = jobs_module.quick.configure(jobs=procs.jobs).defer()
    assert after.wait(timeout=20).result["pid"] == worker.pid
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(15) == 0
    print(f"\n[outage {procs.backend}] job copies by token: {dict(copies)}")


def test_defer_to_an_unreachable_database_raises_backend_unavailable(tmp_path: Path) -> None:
    """A closed PostgreSQL port, a SQLite file that cannot be opened: ``BackendUnavailable`` at once (with and
    without the schema check first), and nothing kept in memory to be written when the database is back."""
    missing_dir = tmp_path / "not-yet"
    for url in (f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", f"sqlite:///{missing_dir}/jobs.db"):
        for migrate in (True, False):
            db = Database(url)
            jobs = Jobs(db, settings=JobsSettings(lease=2, auto_migrate=migrate))
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                jobs_module.quick.configure(jobs=jobs).defer()
            with pytest.raises(BackendUnavailable):
                jobs.list()

            async def adefer(db: Database = db, jobs: Jobs = jobs) -> None:
                try:
                    with pytest.raises(BackendUnavailable):
                        await jobs_module.quick.configure(jobs=jobs).adefer()
                finally:
                    await db.aclose()
                    await aiosqlite_threads_ended()

            asyncio.run(adefer())
            assert time.monotonic() - started < 30
    # the SQLite file becomes reachable: the failed defers left nothing behind to replay into it
    missing_dir.mkdir()
    db = Database(f"sqlite:///{missing_dir}/jobs.db")
    jobs = Jobs(db, settings=JobsSettings(lease=2))
    assert jobs.list() == []
    db.close()
