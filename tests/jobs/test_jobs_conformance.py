"""One suite, both stores (SQLite, PostgreSQL), both twins (sync, async): what a job queue promises."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.jobs._subject import MODES, Subject

from buttress.errors import BackendUnavailable, NotFoundError, QueueFull, ValidationError
from buttress.events import Event
from buttress.jobs import JobContext, JobFailed, JobStatus
from buttress.jobs._plans import Completion, FetchRequest, complete_plan, fetch_plan
from buttress.resilience import Backoff, Retry


@pytest.fixture(params=MODES)
def subject(request: pytest.FixtureRequest, module_jobs_url: str) -> Iterator[Subject]:
    made = Subject(module_jobs_url, request.param)
    try:
        yield made
    finally:
        made.close()


# -- defer ------------------------------------------------------------------------------------------


def test_a_deferred_job_is_stored_queued_with_its_arguments(subject: Subject) -> None:
    task = subject.task(lambda a, b=0: a + b, priority=3)
    handle = subject.defer(task, 2, b=5)
    info = subject.info(handle)
    assert (info.status, info.args, info.kwargs, info.priority) == (JobStatus.QUEUED, [2], {"b": 5}, 3)
    assert (info.attempts, info.max_attempts, info.queue) == (0, 3, subject.queue)
    assert info.created_at == subject.clock.time()


def test_arguments_that_json_cannot_carry_are_refused_before_anything_is_stored(subject: Subject) -> None:
    task = subject.task(lambda **_: None)
    with pytest.raises(ValidationError, match=r"kwargs\.when is a datetime") as caught:
        subject.defer(task, when=datetime.now(UTC))
    assert caught.value.field == "args"
    with pytest.raises(ValidationError, match=r"args\[0\] has the key 1 \(int\)"):
        subject.defer(task, {1: "a"})
    with pytest.raises(ValidationError, match="finite"):
        subject.defer(task, x=float("nan"))
    assert subject.count(f"queue = '{subject.queue}'") == 0


def test_higher_priority_runs_first_and_fifo_within_a_priority(subject: Subject) -> None:
    order: list[str] = []
    task = subject.task(order.append)
    subject.defer_with(task, {"priority": 0}, "low-1")
    subject.defer_with(task, {"priority": 5}, "high-1")
    subject.defer_with(task, {"priority": 0}, "low-2")
    subject.defer_with(task, {"priority": 5}, "high-2")
    subject.defer_with(task, {"priority": -1}, "lowest")
    subject.work(concurrency=1)
    assert order == ["high-1", "high-2", "low-1", "low-2", "lowest"]


def test_delay_and_at_wait_for_their_time(subject: Subject) -> None:
    ran: list[str] = []
    task = subject.task(ran.append)
    later = subject.defer_with(task, {"delay": 60}, "delay")
    at = subject.defer_with(task, {"at": datetime.fromtimestamp(subject.clock.time() + 120, UTC)}, "at")
    assert subject.info(later).status is JobStatus.SCHEDULED
    subject.work()
    assert ran == []
    subject.clock.advance(61)
    assert subject.info(later).status is JobStatus.QUEUED  # due: waiting for a worker, not the clock
    subject.work()
    assert ran == ["delay"]
    subject.clock.advance(60)
    subject.work()
    assert ran == ["delay", "at"]
    assert subject.info(at).status is JobStatus.SUCCEEDED


def test_bad_options_name_the_field(subject: Subject) -> None:
    task = subject.task(lambda: None)
    with pytest.raises(ValidationError) as caught:
        task.configure(delay=-1)
    assert caught.value.field == "delay"
    with pytest.raises(ValidationError) as caught:
        task.configure(at=datetime(2030, 1, 1))  # noqa: DTZ001 - the naive datetime is the mistake
    assert caught.value.field == "at"
    with pytest.raises(ValidationError) as caught:
        task.configure(delay=1, at=1.0)
    assert caught.value.field == "delay"
    with pytest.raises(ValidationError) as caught:
        subject.task(lambda: None, retry=0)
    assert caught.value.field == "retry"


# -- idempotency keys and bounded queues -------------------------------------------------------------


def test_a_key_folds_duplicates_while_its_job_is_active(subject: Subject) -> None:
    task = subject.task(lambda n: n)
    first = subject.defer_with(task, {"key": f"episode-7-{subject.suffix}"}, 1)
    again = subject.defer_with(task, {"key": f"episode-7-{subject.suffix}"}, 2)
    assert again.id == first.id
    assert subject.count(f"queue = '{subject.queue}'") == 1
    subject.work()
    assert subject.info(first).status is JobStatus.SUCCEEDED
    after = subject.defer_with(
        task, {"key": f"episode-7-{subject.suffix}"}, 3
    )  # the first one finished: a new job
    assert after.id != first.id


def test_a_full_queue_raises_queue_full_and_stores_nothing(subject: Subject) -> None:
    bounded = f"bounded-{subject.suffix}"
    subject.registry.define_queue(bounded, max_size=3)
    task = subject.task(lambda n: n, queue=bounded)
    subject.defer_many(task, [(1,), (2,)])
    with pytest.raises(QueueFull) as caught:
        subject.defer_many(task, [(3,), (4,)])  # one would fit: all or none
    assert caught.value.context["pending"] == 2
    assert subject.count(f"queue = '{bounded}'") == 2
    subject.defer(task, 3)
    with pytest.raises(QueueFull):
        subject.defer(task, 4)
    subject.work()  # running and finished jobs no longer count
    subject.defer(task, 5)
    assert subject.count(f"queue = '{bounded}' AND status = 'queued'") == 1


# -- running: results, failures, retries ----------------------------------------------------------------


def test_results_of_sync_and_async_jobs_are_stored(subject: Subject) -> None:
    async def double(n: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"n": n * 2}

    adouble = subject.task(double)
    square = subject.task(lambda n: n * n, name=f"square-{subject.suffix}")
    handles = [subject.defer(adouble, 21), subject.defer(square, 9)]
    subject.work()
    assert [subject.info(h).result for h in handles] == [{"n": 42}, 81]
    info = subject.info(handles[0])
    assert (info.status, info.attempts, info.progress) == (JobStatus.SUCCEEDED, 1, 1.0)
    assert info.finished_at is not None
    assert info.expires_at == info.finished_at + 86400


def test_the_context_is_passed_to_a_job_that_asks_for_it(subject: Subject) -> None:
    seen: list[tuple[int, int, str]] = []

    def record(ctx: JobContext, label: str) -> None:
        seen.append((ctx.job_id, ctx.attempt, label))

    handle = subject.defer(subject.task(record), "x")
    subject.work()
    assert seen == [(handle.id, 1, "x")]


def test_a_failing_job_is_retried_with_backoff_then_dead(subject: Subject) -> None:
    calls: list[int] = []

    def flaky(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        raise RuntimeError(f"attempt {ctx.attempt}")

    policy = Retry(attempts=3, backoff=Backoff.constant(30), on=RuntimeError)
    handle = subject.defer(subject.task(flaky, retry=policy))
    subject.work()
    info = subject.info(handle)
    assert (info.status, calls) == (JobStatus.RETRYING, [1])
    assert info.run_at == subject.clock.time() + 30
    assert info.error == "RuntimeError: attempt 1"
    subject.clock.advance(30)
    subject.work()
    subject.clock.advance(30)
    subject.work()
    info = subject.info(handle)
    assert (info.status, calls, info.attempts) == (JobStatus.DEAD, [1, 2, 3], 3)
    with pytest.raises(JobFailed, match="ended dead: RuntimeError: attempt 3"):
        handle.result(timeout=1)


def test_an_error_the_policy_does_not_retry_fails_at_once(subject: Subject) -> None:
    def bad() -> None:
        raise KeyError("no")

    handle = subject.defer(subject.task(bad, retry=Retry(attempts=5, on=RuntimeError)))
    subject.work()
    info = subject.info(handle)
    assert (info.status, info.attempts) == (JobStatus.FAILED, 1)


def test_a_dead_job_can_be_retried_by_hand(subject: Subject) -> None:
    outcomes = iter([RuntimeError("first"), None])

    def once_broken() -> str:
        error = next(outcomes)
        if error is not None:
            raise error
        return "fixed"

    handle = subject.defer(subject.task(once_broken, retry=1))
    subject.work()
    assert subject.info(handle).status is JobStatus.DEAD
    assert subject.retry(handle.id) is JobStatus.QUEUED
    assert subject.retry(handle.id) is JobStatus.QUEUED  # already queued: said, nothing changes
    subject.work()
    info = subject.info(handle)
    assert (info.status, info.result, info.attempts, info.error) == (JobStatus.SUCCEEDED, "fixed", 1, None)


def test_a_result_json_cannot_carry_fails_the_job_with_the_reason(subject: Subject) -> None:
    handle = subject.defer(subject.task(lambda: {1, 2}, retry=1))
    subject.work()
    info = subject.info(handle)
    assert info.status is JobStatus.DEAD
    assert "result is a set" in (info.error or "")


def test_an_async_job_past_its_timeout_is_cancelled_and_counts_as_a_failure(subject: Subject) -> None:
    async def slow() -> None:
        await asyncio.sleep(30)

    handle = subject.defer(subject.task(slow, timeout=0.05, retry=1))
    subject.work()
    info = subject.info(handle)
    assert info.status is JobStatus.DEAD
    assert info.error == "TimeoutError: timed out after 0.05 s"


def test_a_sync_job_past_its_timeout_sees_ctx_cancelled(subject: Subject) -> None:
    def patient(ctx: JobContext) -> str:
        assert ctx.wait_cancelled(10)
        ctx.raise_if_cancelled()
        return "never"

    handle = subject.defer(subject.task(patient, timeout=0.05, retry=1))
    subject.work()
    info = subject.info(handle)
    assert info.status is JobStatus.DEAD
    assert info.error == "TimeoutError: timed out after 0.05 s"


# -- cancel -------------------------------------------------------------------------------------------


def test_a_cancelled_queued_job_never_runs(subject: Subject) -> None:
    ran: list[int] = []
    task = subject.task(ran.append)
    handles = [subject.defer(task, n) for n in range(5)]
    assert [subject.cancel(h.id) for h in handles[:3]] == [JobStatus.CANCELLED] * 3
    subject.work()
    assert sorted(ran) == [3, 4]
    assert subject.info(handles[0]).status is JobStatus.CANCELLED
    assert subject.cancel(handles[4].id) is JobStatus.SUCCEEDED  # finished: nothing changes
    with pytest.raises(NotFoundError):
        subject.cancel(10**9)


def test_a_running_async_job_is_cancelled(subject: Subject) -> None:
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    handle = subject.defer(subject.task(forever))

    def cancel_when_started() -> None:
        assert started.wait(10)
        subject.jobs.cancel(handle.id)

    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    subject.work()
    canceller.join()
    info = subject.info(handle)
    assert (info.status, info.error) == (JobStatus.CANCELLED, "cancelled")


def test_a_running_sync_job_sees_ctx_cancelled(subject: Subject) -> None:
    observed: list[bool] = []

    def careful(ctx: JobContext) -> None:
        observed.append(ctx.wait_cancelled(20))
        ctx.raise_if_cancelled()

    handle = subject.defer(subject.task(careful))

    def cancel_when_running() -> None:
        for _ in range(2000):
            if subject.jobs.get(handle.id).status is JobStatus.RUNNING:
                subject.jobs.cancel(handle.id)
                return
            threading.Event().wait(0.005)

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    subject.work()
    canceller.join()
    assert observed == [True]
    assert subject.info(handle).status is JobStatus.CANCELLED


# -- progress, events, reading --------------------------------------------------------------------------


def test_progress_is_published_at_once_and_stored(subject: Subject) -> None:
    events: list[Event] = []
    subject.bus.subscribe("jobs.*.progress", events.append)

    def steps(ctx: JobContext) -> None:
        ctx.progress(0.25, "one")
        ctx.progress(0.5, "two")
        with pytest.raises(ValidationError):
            ctx.progress(1.5)

    handle = subject.defer(subject.task(steps))
    subject.work()
    subject.bus.flush()
    assert [(e.payload["progress"], e.payload["message"]) for e in events] == [(0.25, "one"), (0.5, "two")]
    assert events[0].topic == f"jobs.{handle.id}.progress"
    info = subject.info(handle)
    assert (info.progress, info.message) == (1.0, "two")


def test_status_changes_are_published(subject: Subject) -> None:
    events: list[Event] = []
    subject.bus.subscribe("jobs.**", events.append)
    handle = subject.defer(subject.task(lambda: None))
    subject.work()
    subject.bus.flush()
    assert (f"jobs.{handle.id}.status", "succeeded") in [(e.topic, e.payload["status"]) for e in events]


def test_list_filters_and_pages_newest_first(subject: Subject) -> None:
    task = subject.task(lambda n: n)
    other = subject.task(lambda n: n, name=f"other-{subject.suffix}")
    mine = [subject.defer(task, n).id for n in range(4)]
    subject.defer(other, 9)
    listed = subject.list(task=task.name)
    assert [job.id for job in listed] == sorted(mine, reverse=True)
    assert [job.id for job in subject.list(task=task.name, limit=2, before_id=mine[2])] == [mine[1], mine[0]]
    assert len(subject.list(queue=subject.queue, status="queued")) == 5
    with pytest.raises(ValidationError) as caught:
        subject.list(status="done")
    assert caught.value.field == "status"


def test_stats_count_each_queue(subject: Subject) -> None:
    task = subject.task(lambda: None)
    for _ in range(3):
        subject.defer(task)
    subject.clock.advance(5)
    stats = subject.stats().queues[subject.queue]
    assert (stats.depth, stats.counts, stats.oldest_seconds, stats.stalled) == (3, {"queued": 3}, 5.0, 0)
    subject.work()
    assert subject.stats().queues[subject.queue].counts == {"succeeded": 3}


def test_finished_jobs_are_purged_after_their_ttl(subject: Subject) -> None:
    kept = subject.task(lambda: None, result_ttl=100)
    handle = subject.defer(kept)
    subject.work()
    subject.clock.advance(101)
    subject.work()  # a worker's sweep runs on its heartbeat; run one by hand:
    from buttress.jobs._plans import sweep_plan

    subject.jobs.store.run(lambda: sweep_plan(subject.clock.time(), 86400, 300, subject.jobs.store.dialect))
    with pytest.raises(NotFoundError):
        subject.get(handle.id)


def test_purge_deletes_finished_jobs_only(subject: Subject) -> None:
    task = subject.task(lambda: None)
    done = subject.defer(task)
    subject.work()
    waiting = subject.defer(task)
    with pytest.raises(ValidationError):
        subject.purge(status="queued")
    subject.clock.advance(10)
    assert subject.purge(older_than=5) >= 1
    with pytest.raises(NotFoundError):
        subject.get(done.id)
    assert subject.info(waiting).status is JobStatus.QUEUED


# -- leases and fencing (the plans, on the injected clock) ----------------------------------------------


def _lease(subject: Subject, worker: str, task: str, lease: float = 30.0) -> Any:
    request = FetchRequest(worker=worker, queues=(subject.queue,), tasks=(task,), slots=1, lease=lease)
    now = subject.clock.time()
    return subject.jobs.store.run(lambda: fetch_plan(request, [], now, subject.jobs.store.dialect))


def test_an_expired_lease_is_taken_back_and_the_late_completion_is_a_no_op(subject: Subject) -> None:
    from buttress.jobs._plans import sweep_plan

    task = subject.task(lambda: None)
    handle = subject.defer(task)
    [zombie] = _lease(subject, "zombie", task.name, lease=30)
    assert _lease(subject, "other", task.name) == []  # leased: nobody else gets it
    subject.clock.advance(31)
    swept = subject.jobs.store.run(
        lambda: sweep_plan(subject.clock.time(), 86400, 300, subject.jobs.store.dialect)
    )
    assert [(job_id, status) for job_id, status, _, _ in swept.reclaimed] == [(handle.id, JobStatus.RETRYING)]
    [again] = _lease(subject, "rescuer", task.name)
    assert again.token == zombie.token + 1
    late = Completion(zombie.id, zombie.token, JobStatus.SUCCEEDED, result='"zombie"')
    assert subject.jobs.store.run(lambda: complete_plan([late], subject.clock.time())) == 0
    fresh = Completion(again.id, again.token, JobStatus.SUCCEEDED, result='"rescuer"')
    assert subject.jobs.store.run(lambda: complete_plan([fresh], subject.clock.time())) == 1
    info = subject.info(handle)
    assert (info.status, info.result, info.attempts, info.worker) == (
        JobStatus.SUCCEEDED,
        "rescuer",
        2,
        "rescuer",
    )


def test_a_job_whose_lease_expires_on_its_last_attempt_is_dead(subject: Subject) -> None:
    from buttress.jobs._plans import sweep_plan

    task = subject.task(lambda: None, retry=1)
    handle = subject.defer(task)
    _lease(subject, "zombie", task.name, lease=5)
    subject.clock.advance(6)
    subject.jobs.store.run(lambda: sweep_plan(subject.clock.time(), 86400, 300, subject.jobs.store.dialect))
    info = subject.info(handle)
    assert info.status is JobStatus.DEAD
    assert info.error == "lease expired: worker zombie stopped renewing it"


def test_concurrency_limits_hold_in_one_fetch(subject: Subject) -> None:
    limited = subject.task(lambda: None, concurrency=2)
    for _ in range(5):
        subject.defer(limited)
    request = FetchRequest(
        worker="w", queues=(subject.queue,), tasks=(limited.name,), slots=10, lease=30,
        task_limits={limited.name: 2},
    )  # fmt: skip
    now = subject.clock.time()
    first = subject.jobs.store.run(lambda: fetch_plan(request, [], now, subject.jobs.store.dialect))
    second = subject.jobs.store.run(lambda: fetch_plan(request, [], now, subject.jobs.store.dialect))
    assert (len(first), len(second)) == (2, 0)
    done = Completion(first[0].id, first[0].token, JobStatus.SUCCEEDED, result="null")
    third = subject.jobs.store.run(lambda: fetch_plan(request, [done], now, subject.jobs.store.dialect))
    assert len(third) == 1


def test_eager_mode_runs_the_job_in_the_caller(subject: Subject) -> None:
    from buttress.config import JobsSettings
    from buttress.jobs import Jobs

    eager = Jobs(
        subject.db, settings=JobsSettings(eager=True), clock=subject.clock, registry=subject.registry
    )
    task = subject.task(lambda n: n + 1)
    handle = (
        task.configure(jobs=eager).defer(1)
        if subject.mode == "sync"
        else subject.run(task.configure(jobs=eager).adefer(1))
    )
    assert handle.result() == 2
    assert subject.count(f"queue = '{subject.queue}'") == 0


def test_an_unreachable_database_raises_backend_unavailable(subject: Subject) -> None:
    from buttress.config import DbSettings, JobsSettings
    from buttress.db import Database
    from buttress.jobs import Jobs
    from buttress.resilience import Retry

    if subject.db.backend == "sqlite":
        url = "sqlite:////nonexistent-dir/for/sure/jobs.db"
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    db = Database(url, settings=DbSettings(), retry=Retry(attempts=1, on=Exception))
    down = Jobs(db, settings=JobsSettings(auto_migrate=False), registry=subject.registry)
    deferral = subject.task(lambda: None).configure(jobs=down)
    try:
        with pytest.raises(BackendUnavailable):
            deferral.defer() if subject.mode == "sync" else subject.run(deferral.adefer())
    finally:
        db.close()


def test_a_delay_may_be_a_timedelta(subject: Subject) -> None:
    handle = subject.defer_with(subject.task(lambda: None), {"delay": timedelta(minutes=2)})
    assert subject.info(handle).run_at == subject.clock.time() + 120


def test_the_store_reports_where_jobs_live_and_whether_it_answers(subject: Subject) -> None:
    from buttress.config import DbSettings
    from buttress.db import Database
    from buttress.jobs._store import store_for

    store = subject.jobs.store
    info = store.info()
    assert (info.kind, info.shared, info.available) == (subject.db.backend, True, True)
    assert store.check().status == "pass"
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/none"
    down = Database(url, settings=DbSettings(), retry=Retry(attempts=1, on=Exception))
    try:
        result = store_for(down).check()
        assert result.status == "fail"
        assert "BackendUnavailable" in result.output
        assert "hunter2" not in result.output
        assert "hunter2" not in store_for(down).info().detail
    finally:
        down.close()
