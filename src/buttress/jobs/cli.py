"""``buttress worker`` and ``buttress jobs ls|show|cancel|retry|purge``.

Both read the job database of this machine's settings (``BUTTRESS_DATABASE_URL``, else the embedded
``buttress.db`` in the working directory) through the process's :class:`~buttress.jobs.Jobs`, as
``buttress db status`` reads the database: no ops server is involved. ``worker`` first imports the
modules that define the jobs (``--import``, repeatable; the working directory is importable, as with
``python -m``), then runs a worker until SIGTERM or SIGINT (a second one stops at once), or with
``--burst`` until nothing is due and nothing runs.

Exit codes: 0 done; 1 failed (the database cannot be reached, no such job, a module that does not import,
no job types to run); 2 a usage mistake (click's); 3 the job's state refused the action (cancelling a job
that already ended, retrying one that succeeded or still runs).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

from buttress._console import FOLD
from buttress.errors import ButtressError
from buttress.jobs._info import JobInfo
from buttress.jobs._jobs import Jobs, get_jobs
from buttress.jobs._states import JobStatus

__all__ = [
    "EXIT_FAILED",
    "EXIT_REFUSED",
    "cancel_command",
    "import_modules",
    "ls_command",
    "purge_command",
    "retry_command",
    "show_command",
    "split_queues",
    "worker_command",
]

EXIT_FAILED: Final = 1
EXIT_REFUSED: Final = 3


def _say(console: Console, message: str) -> None:
    console.print(Text(message, style="red"))


def import_modules(modules: Sequence[str], console: Console) -> bool:
    """Import each module (the working directory first on the path); False after printing why not."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's module may raise anything; say what and stop
            _say(console, f"cannot import module {module!r} (--import): {type(exc).__name__}: {exc}")
            return False
    return True


def split_queues(values: Sequence[str] | None) -> list[str] | None:
    """``--queues a,b --queues c`` as ``[a, b, c]``; None (every queue) when not given."""
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _masked(jobs: Jobs) -> str:
    return jobs.db.urls.masked


def worker_command(
    *,
    queues: Sequence[str] | None,
    concurrency: int | None,
    modules: Sequence[str],
    burst: bool,
    scheduler: bool = True,
    console: Console,
) -> int:
    """Import ``modules``, then run a worker in this process until stopped; the exit code."""
    if not import_modules(modules, console):
        return EXIT_FAILED
    jobs = get_jobs()
    if not jobs.registry.tasks:
        _say(
            console,
            "no job types are defined: pass --import with the module that defines them, e.g. myapp.jobs",
        )
        return EXIT_FAILED
    try:
        worker = jobs.worker(queues=split_queues(queues), concurrency=concurrency, scheduler=scheduler)
    except ButtressError as exc:
        _say(console, str(exc))
        return EXIT_FAILED
    until = "; until the queues are empty" if burst else ""
    console.print(
        Text(
            f"buttress worker {worker.id}: queues {', '.join(worker.queues)}; "
            f"{worker.concurrency} at a time; {len(worker.task_names)} job types; {_masked(jobs)}{until}"
        )
    )
    try:
        worker.run_sync(burst=burst)
    except ButtressError as exc:
        _say(console, f"the worker stopped: {exc}")
        return EXIT_FAILED
    state = worker.state
    console.print(
        Text(
            f"buttress worker {worker.id} stopped: {state.succeeded} succeeded, {state.failed} failed, "
            f"{state.retried} retried, {state.cancelled} cancelled, {state.lost} lost"
        )
    )
    return 0


# -- reading and changing jobs ---------------------------------------------------------------------------


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _progress(info: JobInfo) -> str:
    if info.progress is None:
        return "-"
    text = f"{info.progress:.0%}"
    return f"{text} {info.message}" if info.message else text


def _jobs_table(found: Sequence[JobInfo]) -> Table:
    table = Table(title_justify="left")
    for column in ("id", "task", "queue", "status", "priority", "attempts", "progress", "created", "error"):
        table.add_column(column, overflow=FOLD)
    for info in found:
        error = (info.error or "").splitlines()[0][:120] if info.error else ""
        table.add_row(
            str(info.id),
            info.task,
            info.queue,
            info.status.value,
            str(info.priority),
            f"{info.attempts}/{info.max_attempts}",
            _progress(info),
            _when(info.created_at),
            error,
        )
    return table


def _job_table(info: JobInfo) -> Table:
    table = Table(show_header=False, title=f"job {info.id}", title_justify="left")
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow=FOLD)
    times = {"run_at", "created_at", "started_at", "finished_at", "expires_at", "lease_expires", "fire_at"}
    for name, value in info.to_dict().items():
        if name in times:
            shown = _when(value)
        elif isinstance(value, (dict, list)) or name == "result":
            shown = json.dumps(value)
        else:
            shown = "-" if value is None else str(value)
        table.add_row(name, Text(shown))
    return table


def _guarded(console: Console, action: Callable[[], int]) -> int:
    """Run ``action``; a buttress error (no such job, database down) is printed and exits 1."""
    try:
        return action()
    except ButtressError as exc:
        _say(console, str(exc))
        return EXIT_FAILED


def ls_command(
    *,
    status: Sequence[str],
    queue: str | None,
    task: str | None,
    before_id: int | None,
    limit: int,
    as_json: bool,
    console: Console,
    err_console: Console,
) -> int:
    """Print jobs newest first (filtered); the exit code."""

    def run() -> int:
        found = get_jobs().list(status=list(status), queue=queue, task=task, before_id=before_id, limit=limit)
        if as_json:
            console.out(json.dumps([info.to_dict() for info in found]), highlight=False)
        elif not found:
            console.print(Text("no jobs match"))
        else:
            console.print(_jobs_table(found))
        return 0

    return _guarded(err_console, run)


def show_command(*, job_id: int, as_json: bool, console: Console, err_console: Console) -> int:
    """Print one job; the exit code."""

    def run() -> int:
        info = get_jobs().get(job_id)
        if as_json:
            console.out(json.dumps(info.to_dict()), highlight=False)
        else:
            console.print(_job_table(info))
        return 0

    return _guarded(err_console, run)


def _report(
    job_id: int,
    status: JobStatus,
    refused: str | None,
    *,
    as_json: bool,
    console: Console,
    err_console: Console,
) -> int:
    """Print what an action left the job as (JSON: ``{"id", "status"}``); exit 3 with ``refused``."""
    if as_json:
        console.out(json.dumps({"id": job_id, "status": status.value}), highlight=False)
    if refused is not None:
        _say(err_console, refused)
        return EXIT_REFUSED
    if not as_json:
        note = ": its worker was asked to stop it" if status is JobStatus.RUNNING else ""
        console.print(Text(f"job {job_id}: {status.value}{note}"))
    return 0


def cancel_command(*, job_id: int, as_json: bool, console: Console, err_console: Console) -> int:
    """Cancel a job (a running one: ask its worker); exit 3 when it had already ended otherwise."""

    def run() -> int:
        status = get_jobs().cancel(job_id)
        refused = None
        if status not in (JobStatus.CANCELLED, JobStatus.RUNNING):
            refused = f"job {job_id} already ended {status.value}: nothing to cancel"
        return _report(job_id, status, refused, as_json=as_json, console=console, err_console=err_console)

    return _guarded(err_console, run)


def retry_command(*, job_id: int, as_json: bool, console: Console, err_console: Console) -> int:
    """Queue a failed, cancelled or dead job again; exit 3 when it succeeded or still runs."""

    def run() -> int:
        status = get_jobs().retry(job_id)
        refused = None
        if status in (JobStatus.RUNNING, JobStatus.SUCCEEDED):
            refused = f"job {job_id} is {status.value}: only a failed, cancelled or dead job can be retried"
        return _report(job_id, status, refused, as_json=as_json, console=console, err_console=err_console)

    return _guarded(err_console, run)


def purge_command(
    *, older_than: float, status: Sequence[str], as_json: bool, console: Console, err_console: Console
) -> int:
    """Delete finished jobs (of ``status``) that finished over ``older_than`` seconds ago; the exit code."""

    def run() -> int:
        deleted = get_jobs().purge(older_than=older_than, status=list(status))
        if as_json:
            console.out(json.dumps({"deleted": deleted}), highlight=False)
        else:
            console.print(Text(f"deleted {deleted} finished jobs"))
        return 0

    return _guarded(err_console, run)
