"""A job's states and the one decision made after an attempt ends (I/O-free, time passed in).

::

    queued ──┐                      ┌─> succeeded
    scheduled ┴─> running ──────────┼─> failed      (raised what its retry policy does not retry)
    retrying ─┘      │              ├─> retrying ──> running ...  (a retry is due at run_at)
                     │              ├─> dead        (attempts spent, or its lease lost once too often)
                     └─> cancelled <┘  (also straight from queued, scheduled or retrying)

A running job whose worker stops heartbeating is taken back by the sweeper after its lease: retrying
when attempts are left, dead when not. ``failed``, ``dead`` and ``cancelled`` jobs can be retried by hand.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ACTIVE",
    "FINISHED",
    "PENDING",
    "RETRYABLE_BY_HAND",
    "AttemptOutcome",
    "JobStatus",
    "after_failure",
]


class JobStatus(enum.StrEnum):
    """Where a job is in its life; the values are what the ``status`` column and the ops API hold."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"
    DEAD = "dead"


PENDING: Final = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING})
"""Waiting for a worker: fetched once ``run_at`` has come."""
ACTIVE: Final = PENDING | {JobStatus.RUNNING}
"""Not finished: an idempotency key folds duplicates while its job is in one of these."""
FINISHED: Final = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD})
"""Final until someone retries it by hand; kept for the result TTL."""
RETRYABLE_BY_HAND: Final = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD})


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What becomes of a job whose attempt raised: its next status and, for a retry, when it runs."""

    status: JobStatus
    run_at: float | None = None


def after_failure(
    *, attempts: int, max_attempts: int, retryable: bool, delay: float, now: float
) -> AttemptOutcome:
    """The outcome of attempt number ``attempts`` (1-based) that raised.

    ``retryable`` is the job's retry policy's verdict on the error; ``delay`` its backoff before the
    next attempt. An error it does not retry fails the job; one it does retries it until ``max_attempts``.
    """
    if not retryable:
        return AttemptOutcome(JobStatus.FAILED)
    if attempts >= max_attempts:
        return AttemptOutcome(JobStatus.DEAD)
    return AttemptOutcome(JobStatus.RETRYING, now + max(0.0, delay))
