"""``buttress worker`` and ``buttress jobs ls|show|cancel|retry|purge`` on SQLite and PostgreSQL.

The commands read the database of the settings (``BUTTRESS_DATABASE_URL``) through the process's Jobs.
The worker runs in this process with ``--burst`` (it returns once the queues are empty), and as a real
``python -m buttress worker`` process that a SIGTERM stops gracefully.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.jobs._support import db_url, module_pg_url, sql
from typer.testing import CliRunner

from buttress.cli import app
from buttress.config import reset_settings
from buttress.container import get_container
from buttress.jobs import Jobs, JobStatus, Registry, Task, get_jobs

__all__ = ["db_url", "module_pg_url"]

MODULE_TEXT = """
from buttress.jobs import JobContext, job

@job(queue="{queue}", name="{prefix}.greet")
def greet(ctx: JobContext, name: str) -> str:
    ctx.progress(0.5, "writing")
    return "hello " + name

@job(queue="{queue}", name="{prefix}.refuse", retry=1)
def refuse(reason: str) -> None:
    raise ValueError(reason)

@job(queue="{queue}-slow", name="{prefix}.later")
def later() -> int:
    return 1
"""


class JobModule:
    """A module of jobs written to the working directory under a unique name, not yet imported."""

    def __init__(self, directory: Path) -> None:
        token = uuid.uuid4().hex[:8]
        self.name = f"cli_jobs_{token}"
        self.queue = f"cli-{token}"
        self.prefix = self.name
        (directory / f"{self.name}.py").write_text(MODULE_TEXT.format(queue=self.queue, prefix=self.prefix))

    def task(self, short: str) -> Task[..., Any]:
        task: Task[..., Any] = getattr(sys.modules[self.name], short)
        return task


@pytest.fixture
def configured(isolated_settings: None, db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The settings name ``db_url``; the working directory is an empty temporary one."""
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", db_url)
    reset_settings()
    return db_url


@pytest.fixture
def module(configured: str) -> Iterator[JobModule]:
    made = JobModule(Path.cwd())
    yield made
    sys.modules.pop(made.name, None)


def invoke(*arguments: str) -> Any:
    return CliRunner().invoke(app, list(arguments))


def loaded(module: JobModule) -> None:
    """Import the module as the worker command does: ``--import`` from the working directory."""
    result = invoke("worker", "--import", module.name, "--burst")
    assert result.exit_code == 0, result.stderr
    assert module.name in sys.modules


def test_the_worker_imports_jobs_from_the_working_directory_and_runs_them(module: JobModule) -> None:
    loaded(module)  # nothing deferred yet: the burst ends at once
    greeted = module.task("greet").defer("ada")
    refused = module.task("refuse").defer("no thanks")
    result = invoke("worker", "--import", module.name, "--queues", module.queue, "--burst", "-c", "2")
    assert result.exit_code == 0, result.stderr
    assert f"queues {module.queue};" in result.stderr
    assert "2 at a time" in result.stderr
    assert "stopped: 1 succeeded, 1 failed, 0 retried, 0 cancelled, 0 lost" in result.stderr
    assert greeted.result(timeout=5) == "hello ada"
    assert refused.status() is JobStatus.DEAD


def test_the_worker_runs_only_the_queues_it_is_given(module: JobModule) -> None:
    loaded(module)
    slow = module.task("later").defer()
    fast = module.task("greet").defer("bob")
    result = invoke("worker", "--queues", f" {module.queue} ,", "--burst")
    assert result.exit_code == 0, result.stderr
    assert (fast.status(), slow.status()) == (JobStatus.SUCCEEDED, JobStatus.QUEUED)
    both = invoke("worker", "-q", module.queue, "-q", f"{module.queue}-slow", "--burst")
    assert both.exit_code == 0, both.stderr
    assert slow.status() is JobStatus.SUCCEEDED


@pytest.mark.usefixtures("configured")
def test_the_worker_fails_clearly(tmp_path: Path) -> None:
    missing = invoke("worker", "--import", "no_such_module_anywhere", "--burst")
    assert missing.exit_code == 1
    assert "cannot import module 'no_such_module_anywhere' (--import): ModuleNotFoundError" in missing.stderr
    (tmp_path / "broken_jobs_module.py").write_text("raise RuntimeError('boom at import')\n")
    broken = invoke("worker", "--import", "broken_jobs_module", "--burst")
    assert broken.exit_code == 1
    assert "RuntimeError: boom at import" in broken.stderr
    with get_container().override(Jobs, Jobs(get_jobs().db, registry=Registry())):
        empty = invoke("worker", "--burst")
    assert empty.exit_code == 1
    assert "no job types are defined: pass --import" in empty.stderr
    assert invoke("worker", "--concurrency", "0").exit_code == 2


def test_a_database_that_cannot_be_reached_exits_1_without_its_password(
    isolated_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", "postgresql://app:hunter2-secret@127.0.0.1:9/none")
    reset_settings()
    for arguments in (("jobs", "ls"), ("jobs", "show", "1"), ("jobs", "purge")):
        result = invoke(*arguments)
        assert result.exit_code == 1, arguments
        assert "cannot be reached" in result.stderr
        assert "hunter2-secret" not in result.stderr + result.stdout


def test_ls_and_show(module: JobModule) -> None:
    loaded(module)
    done = module.task("greet").defer("cy")
    dead = module.task("refuse").defer("nope")
    assert invoke("worker", "--burst").exit_code == 0
    waiting = module.task("later").configure(priority=4).defer()
    listed = invoke("jobs", "ls", "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [row["id"] for row in rows] == [waiting.id, dead.id, done.id]
    assert rows[2]["result"] == "hello cy"
    assert rows[1]["error"] == "ValueError: nope"
    assert rows[0]["priority"] == 4
    assert [
        r["id"] for r in json.loads(invoke("jobs", "ls", "--json", "-s", "dead", "-s", "queued").stdout)
    ] == [
        waiting.id,
        dead.id,
    ]
    assert [
        r["id"] for r in json.loads(invoke("jobs", "ls", "--json", "--task", f"{module.prefix}.greet").stdout)
    ] == [done.id]
    assert [r["id"] for r in json.loads(invoke("jobs", "ls", "--json", "--queue", module.queue).stdout)] == [
        dead.id,
        done.id,
    ]
    page = json.loads(invoke("jobs", "ls", "--json", "--limit", "1", "--before-id", str(waiting.id)).stdout)
    assert [row["id"] for row in page] == [dead.id]
    table = invoke("jobs", "ls")
    assert table.exit_code == 0
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.stdout.splitlines()]
    rows_by_id = {row[0]: row for row in cells if row and row[0].isdigit()}
    assert rows_by_id[str(done.id)][3:7] == ["succeeded", "0", "1/3", "100% writing"]
    assert rows_by_id[str(dead.id)][3] == "dead"
    assert rows_by_id[str(dead.id)][-1] == "ValueError: nope"
    assert invoke("jobs", "ls", "--status", "vanished").exit_code == 1
    assert "no jobs match" in invoke("jobs", "ls", "--task", "nothing.like.this").stdout
    shown = invoke("jobs", "show", str(done.id), "--json")
    assert json.loads(shown.stdout) == get_jobs().get(done.id).to_dict()
    pretty = invoke("jobs", "show", str(dead.id))
    assert pretty.exit_code == 0
    assert f"job {dead.id}" in pretty.stdout
    assert '["nope"]' in pretty.stdout
    absent = invoke("jobs", "show", "987654")
    assert (absent.exit_code, absent.stdout) == (1, "")
    assert "no job 987654" in absent.stderr


def test_cancel_retry_and_their_exit_codes(module: JobModule) -> None:
    loaded(module)
    done = module.task("greet").defer("dee")
    dead = module.task("refuse").defer("never")
    assert invoke("worker", "--burst").exit_code == 0
    waiting = module.task("later").defer()
    cancelled = invoke("jobs", "cancel", str(waiting.id), "--json")
    assert (cancelled.exit_code, json.loads(cancelled.stdout)) == (
        0,
        {"id": waiting.id, "status": "cancelled"},
    )
    assert waiting.status() is JobStatus.CANCELLED
    assert invoke("jobs", "cancel", str(waiting.id)).stdout == f"job {waiting.id}: cancelled\n"  # idempotent
    ended = invoke("jobs", "cancel", str(done.id))
    assert ended.exit_code == 3
    assert f"job {done.id} already ended succeeded" in ended.stderr
    retried = invoke("jobs", "retry", str(dead.id))
    assert (retried.exit_code, retried.stdout) == (0, f"job {dead.id}: queued\n")
    info = dead.info()
    assert (info.status, info.attempts, info.error) == (JobStatus.QUEUED, 0, None)
    refused = invoke("jobs", "retry", str(done.id), "--json")
    assert refused.exit_code == 3
    assert json.loads(refused.stdout) == {"id": done.id, "status": "succeeded"}
    assert "only a failed, cancelled or dead job can be retried" in refused.stderr
    for action in ("cancel", "retry"):
        assert invoke("jobs", action, "987654").exit_code == 1
    assert invoke("jobs", "cancel", "0").exit_code == 2


def test_cancelling_a_running_job_asks_its_worker(module: JobModule) -> None:
    loaded(module)
    running = module.task("later").defer()
    sql(
        get_jobs(),
        "UPDATE buttress_jobs SET status = 'running', worker = 'w', lease_expires = 1e12 WHERE id = :i",
        i=running.id,
    )
    result = invoke("jobs", "cancel", str(running.id))
    assert (result.exit_code, result.stdout) == (
        0,
        f"job {running.id}: running: its worker was asked to stop it\n",
    )
    assert running.info().cancel_requested is True


def test_purge_deletes_finished_jobs_only(module: JobModule) -> None:
    loaded(module)
    done = module.task("greet").defer("eve")
    dead = module.task("refuse").defer("no")
    assert invoke("worker", "--burst").exit_code == 0
    waiting = module.task("later").defer()
    now = get_jobs().clock.time()
    sql(get_jobs(), "UPDATE buttress_jobs SET finished_at = :t WHERE id = :i", t=now - 7200, i=dead.id)
    young = invoke("jobs", "purge", "--older-than", "3600", "--json")
    assert (young.exit_code, json.loads(young.stdout)) == (0, {"deleted": 1})
    assert [row.id for row in get_jobs().list()] == [waiting.id, done.id]
    refused = invoke("jobs", "purge", "--status", "queued")
    assert refused.exit_code == 1
    assert "purge deletes finished jobs only" in refused.stderr
    assert invoke("jobs", "purge", "--status", "failed").stdout == "deleted 0 finished jobs\n"
    assert invoke("jobs", "purge").stdout == "deleted 1 finished jobs\n"
    assert [row.id for row in get_jobs().list()] == [waiting.id]


def test_a_worker_process_runs_jobs_until_sigterm(module: JobModule, configured: str) -> None:
    env = {**os.environ, "BUTTRESS_DATABASE_URL": configured, "BUTTRESS_JOBS__POLL_INTERVAL": "0.01"}
    process = subprocess.Popen(
        [sys.executable, "-m", "buttress", "worker", "--import", module.name, "-c", "3"],
        cwd=Path.cwd(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sys.path.insert(0, str(Path.cwd()))
        try:
            __import__(module.name)
        finally:
            sys.path.remove(str(Path.cwd()))
        handles = [module.task("greet").defer(f"n{n}") for n in range(5)]
        assert [handle.result(timeout=60) for handle in handles] == [f"hello n{n}" for n in range(5)]
        assert get_jobs().stats().workers[0]["concurrency"] == 3
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "stopped: 5 succeeded, 0 failed" in stderr
    assert get_jobs().stats().workers == []  # a clean stop unregisters the worker
