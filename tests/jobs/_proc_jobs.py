"""Jobs the multi-process tests run in worker processes of their own (``_proc_worker.py``).

Each job writes what it did as one line to a log file of its process (``<BUTTRESS_TEST_JOB_LOG>/<pid>.log``)
with a single ``write(2)`` on an ``O_APPEND`` descriptor: a line written is in the kernel's page cache at
once, so it survives a SIGKILL of the process a moment later, and lines from threads never interleave.
The tests read every file back (:func:`read_log`) to count executions, time them and find overlaps,
without adding writes to the database under test.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buttress.jobs import JobContext, define_queue, job

LOG_ENV = "BUTTRESS_TEST_JOB_LOG"
LIMITED_QUEUE = "proc-limited"
define_queue(LIMITED_QUEUE, concurrency=2)

_fd_lock = threading.Lock()
_fd: dict[str, int] = {}


def note(kind: str, ctx: JobContext, *extra: object) -> None:
    """Append ``kind job_id token attempt pid time extra...`` to this process's log."""
    pid = os.getpid()
    path = str(Path(os.environ[LOG_ENV]) / f"{pid}.log")  # per test: in-process workers share the process
    with _fd_lock:
        fd = _fd.get(path)
        if fd is None:
            fd = _fd[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    fields = [kind, ctx.job_id, ctx.token, ctx.attempt, pid, repr(time.time()), *extra]
    os.write(fd, (" ".join(str(field) for field in fields) + "\n").encode())


@dataclass(frozen=True, slots=True)
class Line:
    """One logged event of one job attempt."""

    kind: str
    job_id: int
    token: int
    attempt: int
    pid: int
    at: float
    extra: tuple[str, ...]


def read_log(directory: Path) -> list[Line]:
    """Every line every process logged, oldest first."""
    lines = []
    for path in directory.glob("*.log"):
        for raw in path.read_text().splitlines():
            kind, job_id, token, attempt, pid, at, *extra = raw.split(" ")
            lines.append(Line(kind, int(job_id), int(token), int(attempt), int(pid), float(at), tuple(extra)))
    lines.sort(key=lambda line: line.at)
    return lines


def _capped(seconds: float) -> float:
    """``seconds``, at most ``BUTTRESS_TEST_SLEEP_CAP`` when the worker's environment sets it (a later worker
    then runs quickly what an earlier one was made to hold for long)."""
    cap = os.environ.get("BUTTRESS_TEST_SLEEP_CAP")
    return min(seconds, float(cap)) if cap else seconds


def _outcome(ctx: JobContext) -> dict[str, Any]:
    return {"pid": os.getpid(), "token": ctx.token, "attempt": ctx.attempt}


# -- chaos: many short jobs, killed workers ------------------------------------------------------------


@job(retry=100)
async def chaos(ctx: JobContext, n: int) -> dict[str, Any]:
    """10-40 ms, so a kill finds its worker's slots busy; ``retry=100``: repeated lease losses (each counts an
    attempt) never make it dead."""
    note("start", ctx, n)
    await asyncio.sleep(0.01 + 0.005 * (n % 7))
    note("end", ctx, n)
    return _outcome(ctx)


@job(retry=10)
def slow_first(ctx: JobContext, seconds: float) -> dict[str, Any]:
    """Sync: the first attempt takes ``seconds`` (its thread runs on after a lost lease), later ones none."""
    note("start", ctx)
    if ctx.attempt == 1:
        time.sleep(seconds)
    note("end", ctx)
    return _outcome(ctx)


@job
async def quick(ctx: JobContext) -> dict[str, Any]:
    """Does nothing but say which worker ran it."""
    note("start", ctx)
    return _outcome(ctx)


# -- limits ------------------------------------------------------------------------------------------------


@job(concurrency=2)
async def limited(ctx: JobContext, seconds: float) -> None:
    """At most two run at once across every worker."""
    note("start", ctx)
    await asyncio.sleep(_capped(seconds))
    note("end", ctx)


@job(queue=LIMITED_QUEUE)
async def in_queue_async(ctx: JobContext, seconds: float) -> None:
    """One of two job types sharing the queue limited to two running jobs."""
    note("start", ctx)
    await asyncio.sleep(seconds)
    note("end", ctx)


@job(queue=LIMITED_QUEUE)
def in_queue_sync(ctx: JobContext, seconds: float) -> None:
    """The other, run in the worker's threads."""
    note("start", ctx)
    time.sleep(seconds)
    note("end", ctx)


# -- cancel ------------------------------------------------------------------------------------------------


@job
def counted(ctx: JobContext) -> None:
    """Only says it ran."""
    note("start", ctx)


@job
async def waits_async(ctx: JobContext) -> None:
    """Waits a minute unless cancelled; notes the moment the cancel arrives."""
    note("start", ctx)
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        note("cancelled", ctx)
        raise


@job
def waits_sync(ctx: JobContext) -> None:
    """Sync: waits for ``ctx.cancelled`` (up to a minute), notes it and stops."""
    note("start", ctx)
    if ctx.wait_cancelled(60):
        note("cancelled", ctx)
    ctx.raise_if_cancelled()


@job(process=True)
def ignores_cancel(ctx: JobContext) -> None:
    """In a subprocess of its own, never looks at ``ctx.cancelled``: only terminating it stops it."""
    note("start", ctx)
    time.sleep(60)
    note("end", ctx)


# -- shutdown ----------------------------------------------------------------------------------------------


@job
async def sleeps(ctx: JobContext, seconds: float) -> dict[str, Any]:
    """Sleeps ``seconds`` (capped: see :func:`_capped`); notes a cancel."""
    note("start", ctx)
    try:
        await asyncio.sleep(_capped(seconds))
    except asyncio.CancelledError:
        note("cancelled", ctx)
        raise
    note("end", ctx)
    return _outcome(ctx)


@job
def sleeps_sync(ctx: JobContext, seconds: float) -> dict[str, Any]:
    """Sync, deaf to ``ctx.cancelled``: sleeps ``seconds`` (capped: see :func:`_capped`) in its thread."""
    note("start", ctx)
    time.sleep(_capped(seconds))
    note("end", ctx)
    return _outcome(ctx)
