"""Cache warmers as durable jobs: one run across processes, with the jobs' retries, status, progress, cancel.

``buttress.cache`` sits below jobs and keeps its own in-process runner (startup warming, ``buttress cache
warm``, ``POST /ops/cache/warm``): a program without a job database still warms. What that runner cannot
give (one run across processes, a stored status, retries, cancel from anywhere, schedules) comes from
here, by wrapping a warmer in a job type::

    warm_popular = warm_job("popular")          # module level, beside @cache.warmer("popular")
    warm_popular.defer()                         # a worker runs it; a second defer folds into this run
    schedule_warmer("popular", every=900)        # every 15 minutes, exactly once per fire

The job runs the warmer through the cache's own runner, so its events, metric and per-process state stay
as they were; the warmer's yields become ``ctx.progress``, and a cancel or timeout stops it at its next
yield (a warmer that never yields runs to its end).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from buttress.cache import (
    Cache,
    WarmCancelled,
    WarmProgress,
    WarmResult,
    run_all_warmers,
    warmer_caches,
    warmers_of,
)
from buttress.errors import ButtressError, NotFoundError, ValidationError
from buttress.jobs._context import JobCancelled, JobContext
from buttress.jobs._registry import REGISTRY, Registry
from buttress.jobs._schedule import Overlap, schedule
from buttress.jobs._schedule_spec import CatchUp
from buttress.jobs._task import DEFAULT_BACKOFF, Deferral, Task
from buttress.resilience import Retry

if TYPE_CHECKING:
    from buttress.jobs._jobs import Jobs

__all__ = ["WARM_QUEUE", "WARM_TASK_PREFIX", "WarmFailed", "WarmTask", "schedule_warmer", "warm_job"]

WARM_QUEUE: Final = "cache"
"""The queue warm jobs use unless ``warm_job(queue=...)`` says otherwise."""
WARM_TASK_PREFIX: Final = "cache.warm"
"""A warm job type is named ``cache.warm:<warmer>`` (``cache.warm`` alone runs every warmer)."""


class WarmFailed(ButtressError):
    """A warm job's warmer failed (``context["errors"]`` by warmer); the retry policy decides what next."""

    default_code = "cache_warm_failed"
    default_status = 502
    title = "Cache warm failed"


def _retryable(error: BaseException) -> bool:
    """Retry a failed warmer or a busy cache; a warmer unknown to this process will not appear by waiting."""
    return isinstance(error, Exception) and not isinstance(error, (NotFoundError, ValidationError))


def default_retry(attempts: int = 3) -> Retry:
    """The warm jobs' policy: ``attempts`` tries, 1 s, 2 s, 4 s ... apart, unless the warmer is unknown."""
    return Retry(attempts=attempts, backoff=DEFAULT_BACKOFF, on=_retryable, name="cache.warm", deadline=None)


def task_name(warmer: str | None) -> str:
    """The job type name of ``warmer`` (None: every warmer)."""
    return WARM_TASK_PREFIX if warmer is None else f"{WARM_TASK_PREFIX}:{warmer}"


class _Progress:
    """Turns the cache's progress callbacks into ``ctx.progress``: the run's fraction and a short message."""

    def __init__(self, ctx: JobContext, count: int) -> None:
        self.ctx = ctx
        self.count = max(count, 1)
        self.finished = 0
        self.fraction = 0.0

    def __call__(self, step: WarmProgress) -> None:
        if step.phase in ("finished", "failed", "cancelled"):
            self.finished += 1
            self.report(0.0, f"{step.name}: {step.phase} after {step.done} items")
        elif step.phase == "started":
            self.report(0.0, f"{step.name}: started")
        elif step.total:
            self.report(min(step.done / step.total, 1.0), f"{step.name}: {step.done}/{step.total}")
        else:
            self.report(None, f"{step.name}: {step.done} items")

    def report(self, within: float | None, message: str) -> None:
        """``within``: how far the current warmer is (None: unknown, the fraction stays)."""
        if within is not None:
            self.fraction = max(self.fraction, min((self.finished + within) / self.count, 1.0))
        self.ctx.progress(self.fraction, message)


def _run(ctx: JobContext, warmer: str | None, cache: Cache | None) -> dict[str, Any]:
    """One attempt of a warm job: run the warmer(s) here, report progress, stop on cancel."""
    caches = None if cache is None else [cache]
    names = None if warmer is None else [warmer]
    counted = [name for c in (caches or warmer_caches()) for name in warmers_of(c)]
    count = len(counted) if warmer is None else 1
    progress = _Progress(ctx, count)
    try:
        results = run_all_warmers(names, caches=caches, progress=progress, stop=lambda: ctx.cancelled)
    except WarmCancelled:
        raise JobCancelled(ctx.cancel_reason or "cancelled") from None
    return _outcome(warmer, results)


def _outcome(warmer: str | None, results: Sequence[WarmResult]) -> dict[str, Any]:
    failed = {r.name: r.error for r in results if r.outcome != "ok"}
    if failed:
        listed = "; ".join(f"{name}: {error}" for name, error in failed.items())
        raise WarmFailed(
            f"cache warmer{'s' if len(failed) > 1 else ''} failed: {listed}",
            context={"warmer": warmer, "errors": failed},
        )
    return {
        "warmers": [r.to_dict() for r in results],
        "items": sum(r.items for r in results),
        "seconds": round(sum(r.seconds for r in results), 6),
    }


class WarmTask(Task[[], dict[str, Any]]):
    """The job type of one cache warmer (or of all of them): deferring it folds into the active run.

    Every deferral carries the key ``cache.warm:<warmer>`` unless one is given, and at most one of its
    jobs runs at a time across all workers, so the warmer runs once however many processes ask.
    """

    def __init__(
        self,
        warmer: str | None,
        *,
        cache: Cache | None,
        queue: str,
        priority: int,
        retry: int | Retry | None,
        timeout: float | timedelta | None,
        result_ttl: float | timedelta | None,
        registry: Registry | None,
    ) -> None:
        def warm(ctx: JobContext) -> dict[str, Any]:
            return _run(ctx, warmer, cache)

        warm.__qualname__ = f"warm_job.<{task_name(warmer)}>"
        warm.__module__ = __name__
        self.warmer = warmer
        self.cache = cache
        self.spec = (cache, queue, priority, retry, timeout, result_ttl)
        super().__init__(
            warm,
            name=task_name(warmer),
            queue=queue,
            priority=priority,
            retry=default_retry(retry) if isinstance(retry, int) and not isinstance(retry, bool) else retry,
            timeout=timeout,
            concurrency=1,
            result_ttl=result_ttl,
            registry=registry,
        )

    def __repr__(self) -> str:
        return f"<warm job {self.name!r} queue={self.queue!r}>"

    def configure(
        self,
        *,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | timedelta | None = None,
        at: datetime | float | None = None,
        key: str | None = None,
        jobs: Jobs | None = None,
    ) -> Deferral:
        """See :meth:`Task.configure`; ``key`` defaults to the job type's name, so defers fold together."""
        return super().configure(
            priority=priority,
            queue=queue,
            delay=delay,
            at=at,
            key=self.name if key is None else key,
            jobs=jobs,
        )

    def __call__(self) -> dict[str, Any]:
        """Run the warmer here and now (no job, no worker); the outcome a job would return."""
        return _outcome(
            self.warmer,
            run_all_warmers(
                None if self.warmer is None else [self.warmer],
                caches=None if self.cache is None else [self.cache],
            ),
        )


def _check_warmer(warmer: object) -> str | None:
    if warmer is None:
        return None
    if not isinstance(warmer, str) or not warmer.strip() or warmer != warmer.strip():
        raise ValidationError(
            f"warmer must be the name a warmer was registered under (or None for all), got {warmer!r}; "
            "e.g. warm_job('popular') for @cache.warmer('popular')",
            field="warmer",
        )
    return warmer


def warm_job(
    warmer: str | None = None,
    *,
    cache: Cache | None = None,
    queue: str = WARM_QUEUE,
    priority: int = 0,
    retry: int | Retry | None = 3,
    timeout: float | timedelta | None = None,
    result_ttl: float | timedelta | None = None,
    registry: Registry | None = None,
) -> WarmTask:
    """The job type that runs cache warmer ``warmer`` (None: every warmer) on a worker.

    Call it at module level in the code both the deferring process and the workers import (as ``@job``),
    beside the ``@cache.warmer``. ``cache``: run that cache's warmer; default: every cache of the worker's
    process that has a warmer of that name. ``retry``: attempts (1 s, 2 s, 4 s ... apart) or a
    :class:`~buttress.resilience.Retry`; a warmer the worker does not know fails at once. ``timeout``
    stops the warmer at its next yield. Calling it again with the same name returns the same job type.
    """
    name = _check_warmer(warmer)
    book = registry or REGISTRY
    made = WarmTask(
        name,
        cache=cache,
        queue=queue,
        priority=priority,
        retry=retry,
        timeout=timeout,
        result_ttl=result_ttl,
        registry=Registry(),  # checked here; registered below, once it is known to be the one
    )
    known = book.tasks.get(made.name)
    if isinstance(known, WarmTask):
        if known.spec != made.spec:
            raise ValidationError(
                f"warm_job({name!r}) was already defined with other options; define it once and import it",
                field="warmer",
            )
        return known
    book.add(made)
    return made


def schedule_warmer(
    warmer: str | None = None,
    *,
    cron: str | None = None,
    every: float | timedelta | None = None,
    at: Iterable[str] | str | None = None,
    tz: str = "UTC",
    name: str | None = None,
    catch_up: CatchUp = "once",
    catch_up_window: float | timedelta = 3600.0,
    misfire_grace: float | timedelta = 60.0,
    overlap: Overlap = "skip",
    cache: Cache | None = None,
    queue: str = WARM_QUEUE,
    priority: int = 0,
    retry: int | Retry | None = 3,
    timeout: float | timedelta | None = None,
    result_ttl: float | timedelta | None = None,
    registry: Registry | None = None,
) -> WarmTask:
    """Run cache warmer ``warmer`` (None: every warmer) on a schedule; its :func:`warm_job` type.

    ``cron``/``every``/``at``, ``tz``, ``catch_up`` and ``overlap`` are :func:`~buttress.jobs.schedule`'s:
    each fire becomes exactly one warm job however many schedulers run; by default a missed stretch warms
    once, and a fire while the previous warm still runs is skipped. ``name`` (default: the job type's,
    ``cache.warm:<warmer>``) names the schedule; give each of several schedules of one warmer its own.
    """
    task = warm_job(
        warmer,
        cache=cache,
        queue=queue,
        priority=priority,
        retry=retry,
        timeout=timeout,
        result_ttl=result_ttl,
        registry=registry,
    )
    schedule(
        cron=cron,
        every=every,
        at=at,
        tz=tz,
        name=name,
        catch_up=catch_up,
        catch_up_window=catch_up_window,
        misfire_grace=misfire_grace,
        overlap=overlap,
        registry=registry,
    )(task)
    return task
