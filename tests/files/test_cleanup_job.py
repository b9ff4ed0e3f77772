"""The scheduled cleanup: opt-in, one job type, run by a real worker on the process's file store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

import pytest

from buttress.clock import FakeClock
from buttress.config import JobsSettings, load_settings
from buttress.container import get_container
from buttress.errors import ValidationError
from buttress.files import FileStore
from buttress.files._cleanup_job import CLEANUP_TASK, CleanupTask, cleanup_job, schedule_cleanup
from buttress.files._retention import Retention
from buttress.jobs import Jobs, JobStatus, Registry

DAY = 86400.0


def test_importing_files_registers_no_job() -> None:
    code = (
        "import buttress.files, buttress.files._cleanup_job\n"
        "from buttress.jobs import REGISTRY\n"
        "assert not REGISTRY.tasks and not REGISTRY.schedules, (REGISTRY.tasks, REGISTRY.schedules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_schedule_cleanup_uses_the_settings_cron_and_defines_one_job_type(
    isolated_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUTTRESS_FILES__CLEANUP_CRON", "*/10 * * * *")
    registry = Registry()
    rules = [Retention(max_age=30 * DAY)]
    task = schedule_cleanup(rules, registry=registry)
    assert isinstance(task, CleanupTask)
    assert registry.task(CLEANUP_TASK) is task
    entry = registry.schedules[CLEANUP_TASK]
    assert (entry.spec.text, entry.queue, entry.overlap) == ("cron */10 * * * * UTC", "files", "skip")
    assert task.concurrency == 1
    assert cleanup_job(rules, registry=registry) is task  # the same definition again: the same type
    with pytest.raises(ValidationError) as other:
        cleanup_job([Retention(max_age=DAY)], registry=registry)
    assert other.value.context["field"] == "rules"
    with pytest.raises(ValidationError) as bad_limit:
        cleanup_job(limit=0, registry=Registry())
    assert bad_limit.value.context["field"] == "limit"
    explicit = schedule_cleanup(cron="0 3 * * *", registry=Registry())
    assert explicit.rules is None  # the store's own retention


def test_a_worker_runs_the_cleanup_on_the_process_store(
    isolated_settings: None, make_store: Callable[..., FileStore], clock: FakeClock
) -> None:
    store = make_store()
    old = store.save(b"an old episode\n", name="old.txt")
    clock.advance(40 * DAY)
    young = store.save(b"a new episode\n", name="new.txt")
    registry = Registry()
    task = cleanup_job([Retention(action="delete", max_age=30 * DAY)], registry=registry)
    settings = JobsSettings.model_validate({"poll_interval": 0.01, "grace": 5.0})
    jobs = Jobs(store.db, settings=settings, clock=FakeClock(start_time=clock.time()), registry=registry)
    with get_container().override(FileStore, store):
        handle = task.configure(jobs=jobs).defer()
        asyncio.run(jobs.worker(concurrency=1).run(burst=True))
    info = handle.info()
    assert info.status is JobStatus.SUCCEEDED, info.error
    assert (info.result["deleted"], info.result["errors"], info.result["dry_run"]) == (1, 0, False)
    assert [f.id for f in store.list()] == [young.id]
    assert old.id not in {f.id for f in store.list()}
    assert load_settings(env_file=None, environ={}).files.cleanup_cron == "17 * * * *"


def test_the_scheduled_rules_are_what_a_cleanup_by_hand_applies() -> None:
    from buttress.files import Retention, cleanup_job, scheduled_rules
    from buttress.jobs import Registry

    registry = Registry()
    assert scheduled_rules(registry) is None  # no cleanup job: the store's own retention applies
    rules = [Retention(max_age=30 * 86400)]
    cleanup_job(rules, registry=registry)
    assert scheduled_rules(registry) == tuple(rules)
