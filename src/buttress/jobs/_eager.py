"""Eager mode (``jobs.eager``, for users' tests): a deferred job runs at once in the caller, nothing stored.

It runs the attempts a worker would (its retry policy decides, without the backoff waits) and settles on
the status a worker would record: ``succeeded``, ``failed`` (an error the policy does not retry) or
``dead`` (the attempts spent). The handle holds that outcome; ``result()`` returns or raises ``JobFailed``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from buttress.errors import ValidationError
from buttress.jobs._context import JobContext, enter, leave
from buttress.jobs._handle import JobHandle
from buttress.jobs._info import JobInfo
from buttress.jobs._payload import dump_args, dump_result, load_args
from buttress.jobs._states import JobStatus, after_failure

if TYPE_CHECKING:
    from buttress.jobs._jobs import Jobs
    from buttress.jobs._task import Task

__all__ = ["EagerRunner"]

_IDS = itertools.count(-1, -1)  # negative: never an id the database hands out


class EagerRunner:
    """Runs ``jobs``' deferred calls in the caller."""

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    def run(self, task: Task[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> JobHandle:
        """Run every attempt now; the settled handle."""
        if task.is_async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise ValidationError(
                    f"eager mode cannot run the async job {task.name!r} from a running event loop "
                    "with defer(); use await adefer()",
                    field="jobs.eager",
                )
        attempts = self._attempts(task, args, kwargs)
        answer: tuple[Any, Exception | None] | None = None
        try:
            while True:
                fn, call, keywords = attempts.send(answer)
                try:
                    value = asyncio.run(fn(*call, **keywords)) if task.is_async else fn(*call, **keywords)
                except Exception as exc:  # noqa: BLE001 - the attempt's outcome, decided by the plan
                    answer = (None, exc)
                else:
                    answer = (value, None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def arun(self, task: Task[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> JobHandle:
        """Async :meth:`run`."""
        attempts = self._attempts(task, args, kwargs)
        answer: tuple[Any, Exception | None] | None = None
        try:
            while True:
                fn, call, keywords = attempts.send(answer)
                try:
                    value = await fn(*call, **keywords) if task.is_async else fn(*call, **keywords)
                except Exception as exc:  # noqa: BLE001 - the attempt's outcome, decided by the plan
                    answer = (None, exc)
                else:
                    answer = (value, None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _attempts(
        self, task: Task[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Generator[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any, JobHandle]:
        """The attempts as a plan: yields each call to make, receives (value, error), returns the handle."""
        job_id = next(_IDS)
        positional, keywords = load_args(dump_args(args, kwargs))  # the checks of a stored defer
        attempts = task.attempts(self.jobs.settings.attempts)
        for attempt in itertools.count(1):
            ctx = self._context(task, job_id, attempt, attempts)
            token = enter(ctx)
            try:
                call = (ctx, *positional) if task.wants_context else tuple(positional)
                value, error = yield task.fn, call, keywords
                if error is None:
                    try:
                        dump_result(value)
                    except ValidationError as invalid:
                        error = invalid
            finally:
                leave(token)
            if error is None:
                return self._settle(
                    ctx, task, (positional, keywords), JobStatus.SUCCEEDED, outcome=value, error=None
                )
            status = self._after(task, error, attempt, attempts)
            if status is not JobStatus.RETRYING:
                return self._settle(ctx, task, (positional, keywords), status, outcome=None, error=error)
        raise AssertionError("unreachable")  # pragma: no cover

    def _context(self, task: Task[..., Any], job_id: int, attempt: int, attempts: int) -> JobContext:
        return JobContext(
            job_id=job_id, task=task.name, queue=task.queue, attempt=attempt, max_attempts=attempts,
            events=self.jobs.events,
        )  # fmt: skip

    def _after(self, task: Task[..., Any], error: Exception, attempt: int, attempts: int) -> JobStatus:
        retryable = task.retry.retries(error) if task.retry is not None else True
        now = self.jobs.clock.time()
        return after_failure(
            attempts=attempt, max_attempts=attempts, retryable=retryable, delay=0.0, now=now
        ).status

    def _settle(
        self, ctx: JobContext, task: Task[..., Any], call: tuple[list[Any], dict[str, Any]],
        status: JobStatus,
        *, outcome: Any, error: BaseException | None,
    ) -> JobHandle:  # fmt: skip
        now = self.jobs.clock.time()
        progress = ctx.last_progress
        info = JobInfo(
            id=ctx.job_id, task=task.name, queue=task.queue, priority=task.priority, status=status,
            args=call[0], kwargs=call[1], attempts=ctx.attempt, max_attempts=ctx.max_attempts, run_at=now,
            created_at=now, started_at=now, finished_at=now, expires_at=None,
            progress=1.0 if error is None else (progress[0] if progress else None),
            message=progress[1] if progress else None, result=outcome,
            error=None if error is None else f"{type(error).__name__}: {error}",
            worker=None, lease_expires=None, lease_token=0, key=None, cancel_requested=False, schedule=None,
            fire_at=None,
        )  # fmt: skip
        return JobHandle(ctx.job_id, self.jobs, task.name, settled=info)
