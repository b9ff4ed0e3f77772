"""The scheduled cleanup as a durable job: opt-in, one run at a time across workers.

Importing ``buttress.files`` registers no job; an app that wants the upkeep says so, at module level in
the code its workers import (as with ``@job``)::

    from buttress.files import Retention, schedule_cleanup

    schedule_cleanup([Retention(max_age=30 * 86400), Retention(action="delete", state="archived",
                                                                max_age=365 * 86400)])

Each fire of ``files.cleanup_cron`` (or ``cron=``) becomes one job of type ``files.cleanup``, which runs
:meth:`FileStore.cleanup` on the worker's store (:func:`~buttress.files.get_files`) with these rules
(None: the store's own ``retention``) and returns the report's summary. ``concurrency=1`` and the
schedule's ``overlap="skip"`` keep two cleanups from running at once; were they to, nothing would be
done twice (see :mod:`buttress.files._cleanup`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from buttress.errors import ValidationError
from buttress.files._provide import get_files
from buttress.files._retention import Retention, check_rules
from buttress.jobs import REGISTRY, Registry, Task, schedule
from buttress.resilience import Retry

__all__ = [
    "CLEANUP_QUEUE",
    "CLEANUP_TASK",
    "CleanupTask",
    "cleanup_job",
    "schedule_cleanup",
    "scheduled_rules",
]

CLEANUP_TASK: Final = "files.cleanup"
CLEANUP_QUEUE: Final = "files"


class CleanupTask(Task[[], dict[str, Any]]):
    """The ``files.cleanup`` job type: the rules it applies, the most files one run touches."""

    def __init__(
        self,
        rules: tuple[Retention, ...] | None,
        *,
        limit: int | None,
        queue: str,
        retry: int | Retry | None,
        timeout: float | timedelta | None,
        registry: Registry,
    ) -> None:
        def files_cleanup() -> dict[str, Any]:
            return get_files().cleanup(rules=rules, limit=limit).summary()

        files_cleanup.__module__ = __name__
        self.rules = rules
        self.spec = (rules, limit, queue, retry, timeout)
        super().__init__(
            files_cleanup,
            name=CLEANUP_TASK,
            queue=queue,
            retry=retry,
            timeout=timeout,
            concurrency=1,
            registry=registry,
        )

    def __repr__(self) -> str:
        return f"<cleanup job {self.name!r} queue={self.queue!r} rules={len(self.rules or ())}>"


def cleanup_job(
    rules: Sequence[Retention] | None = None,
    *,
    limit: int | None = None,
    queue: str = CLEANUP_QUEUE,
    retry: int | Retry | None = 3,
    timeout: float | timedelta | None = None,
    registry: Registry | None = None,
) -> CleanupTask:
    """The ``files.cleanup`` job type with ``rules`` (None: the worker's store's ``retention``).

    Call it once at module level (a second call with the same options returns the same job type; with
    others it is an error, as two definitions of one job would be).
    """
    checked = None if rules is None else check_rules(rules, quota_known=False)  # the worker's store checks
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(
            f"limit must be a positive number of files or None, got {limit!r}", field="limit"
        )
    book = registry or REGISTRY
    made = CleanupTask(checked, limit=limit, queue=queue, retry=retry, timeout=timeout, registry=Registry())
    known = book.tasks.get(made.name)
    if isinstance(known, CleanupTask):
        if known.spec != made.spec:
            raise ValidationError(
                "cleanup_job() was already defined with other rules or options; define it once and import it",
                field="rules",
            )
        return known
    book.add(made)
    return made


def schedule_cleanup(
    rules: Sequence[Retention] | None = None,
    *,
    cron: str | None = None,
    tz: str = "UTC",
    limit: int | None = None,
    queue: str = CLEANUP_QUEUE,
    retry: int | Retry | None = 3,
    timeout: float | timedelta | None = None,
    registry: Registry | None = None,
) -> CleanupTask:
    """Run the cleanup on a schedule: ``cron`` (default: ``files.cleanup_cron`` of the settings).

    Missed fires run once on restart; a fire while the previous cleanup still runs is skipped.
    Returns the :func:`cleanup_job` type.
    """
    if cron is None:
        from buttress.config import get_settings  # noqa: PLC0415 - only when the settings' cron is wanted

        cron = get_settings().files.cleanup_cron
    task = cleanup_job(rules, limit=limit, queue=queue, retry=retry, timeout=timeout, registry=registry)
    schedule(cron=cron, tz=tz, name=CLEANUP_TASK, catch_up="once", overlap="skip", registry=registry)(task)
    return task


def scheduled_rules(registry: Registry | None = None) -> tuple[Retention, ...] | None:
    """The rules of the ``files.cleanup`` job this process defined (``schedule_cleanup``/``cleanup_job``),
    or None when it defined none or left its rules to the store's ``retention``; the CLI's and the ops
    server's cleanups apply these, so a cleanup by hand does what the scheduled one does."""
    task = (REGISTRY if registry is None else registry).tasks.get(CLEANUP_TASK)
    return task.rules if isinstance(task, CleanupTask) else None
