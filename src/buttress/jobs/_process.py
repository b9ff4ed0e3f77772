"""Run a sync job in a subprocess of its own (``@job(process=True)``), so a cancel can terminate it.

A thread cannot be stopped from outside; a process can. The job's module is imported afresh in a
spawned interpreter (the job must be defined at module level), its progress comes back over a pipe, and
a cancel or a timeout terminates the process (SIGTERM, then SIGKILL after a second).
"""

from __future__ import annotations

import importlib
import multiprocessing
import traceback
from multiprocessing.connection import Connection
from typing import Any

from buttress.jobs._context import JobCancelled, JobContext
from buttress.jobs._payload import load_args

__all__ = ["SubprocessFailed", "run_in_subprocess"]

_POLL = 0.02


class SubprocessFailed(Exception):
    """The job raised in its subprocess (the message carries the child's error), or the child died."""


class _ChildContext(JobContext):
    """The context inside the subprocess: progress goes over the pipe to the worker."""

    def __init__(self, pipe: Connection, **fields: Any) -> None:
        super().__init__(**fields)
        self._pipe = pipe

    def progress(self, fraction: float, message: str | None = None) -> None:
        self._pipe.send(("progress", float(fraction), message))


def _child_main(module: str, task_name: str, args: str, pipe: Connection, fields: dict[str, Any]) -> None:
    try:
        importlib.import_module(module)
        from buttress.jobs._registry import REGISTRY  # noqa: PLC0415 - after the job's module registered it

        task = REGISTRY.task(task_name)
        positional, keywords = load_args(args)
        call = (_ChildContext(pipe, **fields), *positional) if task.wants_context else tuple(positional)
        value = task.fn(*call, **keywords)
    except BaseException as exc:  # noqa: BLE001 - reported to the worker, which decides
        pipe.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    else:
        pipe.send(("result", value))
    finally:
        pipe.close()


def run_in_subprocess(module: str, task_name: str, args: str, ctx: JobContext) -> Any:
    """Call the job in a spawned process and return its value; terminate it when ``ctx`` is cancelled."""
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    fields = {
        "job_id": ctx.job_id,
        "task": ctx.task,
        "queue": ctx.queue,
        "attempt": ctx.attempt,
        "max_attempts": ctx.max_attempts,
        "token": ctx.token,
    }
    process = spawn.Process(target=_child_main, args=(module, task_name, args, theirs, fields), daemon=True)
    process.start()
    theirs.close()
    try:
        while True:
            if ctx.cancelled:
                raise JobCancelled(ctx.cancel_reason or "cancelled")
            if ours.poll(_POLL):
                try:
                    message = ours.recv()
                except EOFError:
                    raise SubprocessFailed(
                        f"the job's subprocess exited with code {process.exitcode}"
                    ) from None
                if message[0] == "progress":
                    ctx.progress(message[1], message[2])
                elif message[0] == "result":
                    return message[1]
                else:
                    raise SubprocessFailed(message[1])
            elif not process.is_alive() and not ours.poll():
                raise SubprocessFailed(f"the job's subprocess exited with code {process.exitcode}")
    finally:
        ours.close()
        if process.is_alive():
            process.terminate()
            process.join(1.0)
            if process.is_alive():
                process.kill()
        process.join(1.0)
