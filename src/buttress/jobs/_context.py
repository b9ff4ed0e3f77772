"""What a running job knows of itself: its id and attempt, whether it was cancelled, how to report progress.

``ctx.progress(fraction, message)`` is published on the event bus at once (``jobs.<id>.progress``, for
WebSockets and the dashboard) and stored by the worker at most twice a second per job, the latest value
winning; the final state is always stored. ``ctx.cancelled`` turns true when someone cancels the job or
its timeout passes: a sync job checks it between steps (an async job is cancelled on its loop instead).
"""

from __future__ import annotations

import math
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from buttress.errors import ValidationError
from buttress.events import publish_quietly

if TYPE_CHECKING:
    from buttress.events import EventBus

__all__ = ["JobCancelled", "JobContext", "current_job"]

_CURRENT: ContextVar[JobContext | None] = ContextVar("buttress_job", default=None)


class JobCancelled(Exception):
    """Raised by :meth:`JobContext.raise_if_cancelled` in a job that was cancelled or timed out."""


class JobContext:
    """The running job's id, task, attempt and cancellation flag, and its progress reporter."""

    def __init__(
        self,
        *,
        job_id: int,
        task: str,
        queue: str,
        attempt: int,
        max_attempts: int,
        token: int = 0,
        events: EventBus | None = None,
    ) -> None:
        self.job_id = job_id
        self.task = task
        self.queue = queue
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.token = token
        self._events = events
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._progress: tuple[float, str | None] | None = None
        self._dirty = False
        self.cancel_reason: str | None = None

    def __repr__(self) -> str:
        return f"<JobContext job={self.job_id} task={self.task!r} attempt={self.attempt}/{self.max_attempts}>"

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled (or timed out): a sync job should stop soon when it turns true."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled: a one-line check between steps."""
        if self._cancel.is_set():
            raise JobCancelled(self.cancel_reason or "cancelled")

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` s for a cancel; whether it came (a sync job's interruptible pause)."""
        return self._cancel.wait(timeout)

    def request_cancel(self, reason: str) -> None:
        """Mark the job cancelled (the worker calls this on a cancel request or a timeout)."""
        if not self._cancel.is_set():
            self.cancel_reason = reason
            self._cancel.set()

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the job is (0.0 to 1.0) with an optional message."""
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not math.isfinite(fraction)
        ):
            raise ValidationError(
                f"fraction must be a number from 0 to 1, got {fraction!r}", field="fraction"
            )
        if not 0.0 <= fraction <= 1.0:
            raise ValidationError(
                f"fraction must be from 0 to 1, got {fraction}; e.g. done / total", field="fraction"
            )
        if message is not None and not isinstance(message, str):
            raise ValidationError(
                f"message must be a str or None, got {type(message).__name__}", field="message"
            )
        text = None if message is None else message[:500]
        with self._lock:
            self._progress = (float(fraction), text)
            self._dirty = True
        publish_quietly(
            self._events,
            f"jobs.{self.job_id}.progress",
            {"job_id": self.job_id, "task": self.task, "progress": float(fraction), "message": text},
        )

    @property
    def last_progress(self) -> tuple[float, str | None] | None:
        """The latest reported (fraction, message), or None."""
        with self._lock:
            return self._progress

    def take_progress(self) -> tuple[float, str | None] | None:
        """The latest progress if it changed since the last take (the worker's coalesced write)."""
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            return self._progress


def current_job() -> JobContext | None:
    """The context of the job running in this task or thread, or None outside a job."""
    return _CURRENT.get()


def enter(ctx: JobContext) -> Any:
    """Make ``ctx`` the current job; the token to :func:`leave` with."""
    return _CURRENT.set(ctx)


def leave(token: Any) -> None:
    """Undo :func:`enter`."""
    _CURRENT.reset(token)
