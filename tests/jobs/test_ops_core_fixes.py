"""Core fixes found while building the ops side (each test failed before its fix)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.jobs._support import db_url, jobs, module_pg_url

from buttress.config import reset_settings
from buttress.container import get_container
from buttress.db import Database
from buttress.errors import NotFoundError
from buttress.jobs import REGISTRY, Jobs, get_jobs

__all__ = ["db_url", "jobs", "module_pg_url"]


@pytest.mark.parametrize("action", ["get", "cancel", "retry", "aget", "acancel", "aretry"])
async def test_a_missing_job_is_a_not_found_error_naming_the_job(jobs: Jobs, action: str) -> None:
    async def call() -> object:
        result = getattr(jobs, action)(987654)
        return await result if action.startswith("a") else result

    with pytest.raises(NotFoundError) as caught:
        await call()
    assert caught.value.status == 404
    assert "987654" in str(caught.value)
    assert caught.value.context["resource_id"] == "987654"


def test_an_unknown_job_type_is_a_not_found_error_naming_the_fix() -> None:
    with pytest.raises(NotFoundError) as caught:
        REGISTRY.task("ops.no-such-task")
    assert "buttress worker --import" in str(caught.value)
    assert "ops.no-such-task" in str(caught.value)


@pytest.mark.usefixtures("isolated_settings")
def test_the_container_builds_the_process_jobs_on_the_settings_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("BUTTRESS_JOBS__RESULT_TTL", "120")
    reset_settings()
    jobs = get_jobs()
    assert jobs is get_jobs()
    assert jobs.db is get_container().resolve(Database)
    assert jobs.db.urls.sync.database == str(tmp_path / "app.db")
    assert jobs.settings.result_ttl == 120


RUN_SYNC_BESIDE_ANOTHER_WORKER = """
import sys

from buttress.config import JobsSettings
from buttress.db import Database
from buttress.jobs import Jobs, job


@job(queue="exitfix", name="exitfix.work")
def work(n: int) -> int:
    return n


jobs = Jobs(Database(sys.argv[1]), settings=JobsSettings(poll_interval=0.01))
with jobs.worker().running():  # another worker of this process: its pool thread ran a sync job and idles
    assert work.configure(jobs=jobs).defer(1).result(timeout=30) == 1
    work.configure(jobs=jobs).defer(2)
    jobs.worker().run_sync(burst=True)
    print("run_sync returned", flush=True)
"""


def test_run_sync_returns_when_only_other_workers_threads_are_alive(tmp_path: Path) -> None:
    # It used to os._exit(0) the whole process (exit code 0, output cut short) whenever any thread named
    # buttress-job* was alive, such as another worker's idle pool thread: a test run or an app lost silently.
    script = tmp_path / "beside.py"
    script.write_text(RUN_SYNC_BESIDE_ANOTHER_WORKER)
    done = subprocess.run(
        [sys.executable, str(script), f"sqlite:///{tmp_path / 'jobs.db'}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "run_sync returned\n", done.stderr
