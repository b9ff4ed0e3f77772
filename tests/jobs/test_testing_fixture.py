"""What users' tests get: eager mode (jobs run inline, nothing stored) and the ``job_worker`` fixture (a real
worker in this process on a temporary SQLite database, drained on demand).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from buttress.config import JobsSettings, reset_settings
from buttress.db import Database
from buttress.errors import ValidationError
from buttress.jobs import JobContext, JobFailed, Jobs, JobStatus, get_jobs, job
from buttress.resilience import Retry
from buttress.testing.jobs import JobWorker
from buttress.testing.jobs import job_worker as running_worker
from buttress.testing.pytest_plugin import job_worker

__all__ = ["job_worker"]

pytest_plugins = ["pytester"]

SEEN: list[str] = []
SEEN_LOCK = threading.Lock()


@job(queue="fixture-mail", name="fixture.send")
def send(ctx: JobContext, to: str) -> dict[str, object]:
    ctx.progress(0.5, "sending")
    with SEEN_LOCK:
        SEEN.append(to)
    return {"to": to, "attempt": ctx.attempt}


@job(queue="fixture-mail", name="fixture.reject", retry=1)
def reject(to: str) -> None:
    raise ValueError(f"{to} bounced")


@job(queue="fixture-video", name="fixture.encode")
async def encode(episode: int) -> int:
    await asyncio.sleep(0)
    return episode * 10


# -- eager mode --------------------------------------------------------------------------------------------


@pytest.fixture
def eager(isolated_settings: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``BUTTRESS_JOBS__EAGER=true``, as a user's test suite would set it."""
    monkeypatch.setenv("BUTTRESS_JOBS__EAGER", "true")
    reset_settings()


@pytest.mark.usefixtures("eager")
def test_eager_mode_runs_a_deferred_job_inline_and_stores_nothing() -> None:
    SEEN.clear()
    handle = send.defer("ada@example.com")
    assert SEEN == ["ada@example.com"]  # it ran before defer() returned
    assert handle.result() == {"to": "ada@example.com", "attempt": 1}
    info = handle.info()
    assert (info.status, info.task, info.queue, info.progress, info.message) == (
        JobStatus.SUCCEEDED,
        "fixture.send",
        "fixture-mail",
        1.0,
        "sending",
    )
    assert info.args == ["ada@example.com"]
    assert handle.status() is JobStatus.SUCCEEDED
    assert send.defer("bob@example.com").id != handle.id
    assert os.listdir(".") == []  # no buttress.db: nothing was stored anywhere


@pytest.mark.usefixtures("eager")
def test_eager_mode_reports_a_raising_job_as_job_failed() -> None:
    handle = reject.defer("cy@example.com")  # defer itself does not raise, as with a worker
    assert handle.status() is JobStatus.DEAD  # its one attempt spent: what a worker records
    with pytest.raises(JobFailed) as caught:
        handle.result()
    assert caught.value.context["status"] == "dead"
    assert str(caught.value).endswith("ended dead: ValueError: cy@example.com bounced")
    assert handle.cancel() is JobStatus.DEAD  # nothing to cancel


FLAKY_CALLS: list[int] = []


@job(queue="fixture-mail", name="fixture.flaky", retry=Retry(attempts=3, on=ConnectionError))
def flaky(ctx: JobContext) -> str:
    FLAKY_CALLS.append(ctx.attempt)
    if ctx.attempt < 3:
        raise ConnectionError("try again")
    return "third time"


@job(queue="fixture-mail", name="fixture.picky", retry=Retry(attempts=3, on=ConnectionError))
def picky() -> None:
    raise KeyError("not retried")


@pytest.mark.usefixtures("eager")
def test_eager_mode_runs_the_attempts_a_worker_would() -> None:
    FLAKY_CALLS.clear()
    handle = flaky.defer()
    assert (handle.result(), FLAKY_CALLS, handle.info().attempts) == ("third time", [1, 2, 3], 3)
    assert picky.defer().status() is JobStatus.FAILED  # an error its policy does not retry


@pytest.mark.usefixtures("eager")
async def test_eager_mode_runs_async_jobs_with_adefer() -> None:
    handle = await encode.adefer(4)
    assert await handle.aresult() == 40
    many = await send.adefer_many([("a@example.com",), {"to": "b@example.com"}])
    assert [(await h.aresult())["to"] for h in many] == ["a@example.com", "b@example.com"]
    with pytest.raises(ValidationError, match="use await adefer"):
        encode.defer(5)  # a sync defer of an async job cannot run it inside this running loop


@pytest.mark.usefixtures("eager")
def test_eager_mode_runs_an_async_job_from_sync_code_and_checks_arguments() -> None:
    assert encode.defer(2).result() == 20
    with pytest.raises(ValidationError, match="which a job cannot carry as JSON"):
        send.defer(object())  # type: ignore[arg-type]  # the mistake under test
    assert SEEN.count("object") == 0


def test_eager_mode_from_settings_given_to_jobs(tmp_path: Path) -> None:
    jobs = Jobs(Database(f"sqlite:///{tmp_path / 'never.db'}"), settings=JobsSettings(eager=True))
    handle = send.configure(jobs=jobs).defer("dee@example.com")
    assert handle.result() == {"to": "dee@example.com", "attempt": 1}
    assert not (tmp_path / "never.db").exists()


# -- the job_worker fixture --------------------------------------------------------------------------------


def test_the_fixture_runs_what_the_app_defers_and_drains(job_worker: JobWorker) -> None:
    assert get_jobs() is job_worker.jobs  # the app's defer() reaches the fixture's queue
    SEEN.clear()
    handles = [send.defer(f"user{n}@example.com") for n in range(20)]
    rejected = reject.defer("bounce@example.com")
    encoded = encode.defer(3)
    job_worker.drain()
    assert sorted(SEEN) == sorted(f"user{n}@example.com" for n in range(20))
    assert all(handle.status() is JobStatus.SUCCEEDED for handle in handles)  # drained means done
    assert handles[7].result(timeout=0) == {"to": "user7@example.com", "attempt": 1}
    assert rejected.info().error == "ValueError: bounce@example.com bounced"
    assert encoded.result(timeout=0) == 30
    assert job_worker.jobs.stats().queues["fixture-mail"].counts == {"succeeded": 20, "dead": 1}
    assert str(job_worker.jobs.db.urls.sync.database).endswith("buttress-jobs.db")


def test_a_delayed_job_does_not_hold_a_drain(job_worker: JobWorker) -> None:
    later = send.configure(delay=3600).defer("later@example.com")
    now = send.defer("now@example.com")
    job_worker.drain(timeout=10)
    assert now.status() is JobStatus.SUCCEEDED
    assert later.status() is JobStatus.SCHEDULED


async def test_the_fixture_in_an_async_test(job_worker: JobWorker) -> None:
    handles = [await encode.adefer(n) for n in range(5)]
    await job_worker.adrain()
    assert [await handle.aresult(timeout=0) for handle in handles] == [0, 10, 20, 30, 40]


@pytest.fixture
def mail_only(isolated_settings: None, tmp_path: Path) -> Iterator[JobWorker]:
    with running_worker(tmp_path / "jobs.db", queues=["fixture-mail"], concurrency=2) as worker:
        yield worker


def test_a_drain_that_cannot_finish_names_the_jobs_left(mail_only: JobWorker) -> None:
    assert mail_only.worker.concurrency == 2
    stuck = encode.defer(1)  # its queue is not served by this worker
    with pytest.raises(TimeoutError) as caught:
        mail_only.drain(timeout=0.2)
    message = str(caught.value)
    assert message.startswith("1 jobs still due or running after 0.2 s")
    assert f"job {stuck.id} fixture.encode on 'fixture-video' is queued" in message
    assert "(this worker runs queues fixture-mail only)" in message


@pytest.mark.usefixtures("isolated_settings")
def test_the_fixture_undoes_itself(tmp_path: Path) -> None:
    with running_worker(tmp_path / "jobs.db") as worker:
        send.defer("x@example.com")
        worker.drain()
    assert worker.worker.stopped.is_set()
    assert get_jobs() is not worker.jobs
    assert worker.jobs.stats().workers == []  # it stopped cleanly and unregistered


USER_TEST = """
from buttress.jobs import job

@job(queue="plugin-q", name="plugin.double")
def double(n: int) -> int:
    return n * 2

def test_with_a_worker(job_worker):
    handles = [double.defer(n) for n in range(3)]
    job_worker.drain()
    assert [h.result(timeout=0) for h in handles] == [0, 2, 4]
"""


def test_the_fixture_reaches_users_through_the_pytest_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_app=USER_TEST)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_inprocess("-p", "buttress", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
