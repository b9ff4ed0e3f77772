"""``@job``: a function that can be deferred to a worker, with its queue, priority, retries and limits.

The decorator checks its options at import time and picks sync or async once (as stamina does); the
function stays callable directly. ``task.defer(...)`` / ``await task.adefer(...)`` store a call and
return a :class:`~buttress.jobs.JobHandle`; ``task.configure(...)`` overrides when, where, how urgently
and under which idempotency key.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from buttress.errors import ValidationError
from buttress.jobs._context import JobContext, current_job
from buttress.jobs._registry import REGISTRY, Registry, check_name
from buttress.resilience import Backoff, Retry

if TYPE_CHECKING:
    from buttress.jobs._handle import JobHandle
    from buttress.jobs._jobs import Jobs

__all__ = ["DEFAULT_BACKOFF", "Deferral", "Task", "job"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_BACKOFF = Backoff.exponential(initial=1.0, max_delay=300.0)
"""Between attempts of a job that gives an attempt count and no backoff: 1 s, 2 s, 4 s ... at most 5 min."""


def _positive(value: object, field: str, example: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(
            f"{field} must be a positive number of seconds or None, got {value!r}; e.g. {example}",
            field=field,
        )
    return float(value)


def _wants_context(fn: Callable[..., Any]) -> bool:
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        return False
    annotation = params[0].annotation
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(name, str) and name.rsplit(".", 1)[-1] == "JobContext"


def _retry_policy(retry: int | Retry | None) -> Retry | None:
    if retry is None or isinstance(retry, Retry):
        return retry
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 1:
        raise ValidationError(
            f"retry must be a number of attempts (>= 1), a Retry or None, got {retry!r}; e.g. retry=3",
            field="retry",
        )
    return Retry(attempts=retry, backoff=DEFAULT_BACKOFF, on=Exception, name="job")


class Task(Generic[P, R]):
    """A job type: the function, where its calls queue, how urgent they are, and how they are retried.

    Call it to run the function here and now; :meth:`defer` to have a worker run it.
    """

    def __init__(
        self,
        fn: Callable[..., R],
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        retry: int | Retry | None = None,
        timeout: float | timedelta | None = None,
        concurrency: int | None = None,
        result_ttl: float | timedelta | None = None,
        process: bool = False,
        registry: Registry | None = None,
    ) -> None:
        if not callable(fn):
            raise ValidationError(f"@job needs a function, got {fn!r}", field="fn")
        self.fn = fn
        self.name = check_name(name or f"{fn.__module__}.{fn.__qualname__}", "name")
        self.queue = check_name(queue, "queue")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValidationError(
                f"priority must be an int (higher runs first), got {priority!r}", field="priority"
            )
        self.priority = priority
        self.retry = _retry_policy(retry)
        self.timeout = _positive(timeout, "timeout", "timeout=60")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ValidationError(
                f"concurrency must be a positive int or None, got {concurrency!r}", field="concurrency"
            )
        self.concurrency = concurrency
        self.result_ttl = _positive(result_ttl, "result_ttl", "result_ttl=3600")
        self.is_async = inspect.iscoroutinefunction(fn)
        if process and self.is_async:
            raise ValidationError(
                "process=True runs a sync function in a subprocess; "
                "an async job is cancelled on its loop instead",
                field="process",
            )
        self.process = process
        self.wants_context = _wants_context(fn)
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        (registry or REGISTRY).add(self)

    def __repr__(self) -> str:
        return f"<job {self.name!r} queue={self.queue!r} priority={self.priority}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no job); a job that takes a context gets the current job's, or a
        detached one (id 0) outside any job."""
        if self.wants_context and not (args and isinstance(args[0], JobContext)):
            ctx = current_job() or JobContext(
                job_id=0, task=self.name, queue=self.queue, attempt=1, max_attempts=1
            )
            return self.fn(ctx, *args, **kwargs)
        return self.fn(*args, **kwargs)

    def attempts(self, default: int) -> int:
        """How many attempts a call gets: the retry policy's, else ``default`` (the settings')."""
        return self.retry.attempts if self.retry is not None else default

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
        """A deferral with these options (``at`` and ``delay`` exclude each other); see :meth:`defer`."""
        if delay is not None and at is not None:
            raise ValidationError("give delay= or at=, not both", field="delay")
        if (at is not None and not isinstance(at, (datetime, int, float))) or isinstance(at, bool):
            raise ValidationError(f"at must be a datetime or epoch seconds, got {at!r}", field="at")
        if isinstance(at, datetime) and at.tzinfo is None:
            raise ValidationError(
                f"at={at!r} has no time zone; pass an aware datetime "
                "such as datetime.now(UTC) + timedelta(hours=1)",
                field="at",
            )
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise ValidationError(f"priority must be an int, got {priority!r}", field="priority")
        if key is not None and (not isinstance(key, str) or not key or len(key) > 500):
            raise ValidationError(
                f"key must be a non-empty str of at most 500 characters, got {key!r}", field="key"
            )
        return Deferral(
            task=self,
            priority=self.priority if priority is None else priority,
            queue=self.queue if queue is None else check_name(queue, "queue"),
            delay=_positive(delay, "delay", "delay=30") if delay is not None else None,
            at=at.timestamp() if isinstance(at, datetime) else (float(at) if at is not None else None),
            key=key,
            jobs=jobs,
        )

    def defer(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Store a call for a worker; the handle's ``id``, ``status()``, ``result()``, ``cancel()``."""
        return self.configure().defer(*args, **kwargs)

    async def adefer(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Async :meth:`defer`."""
        return await self.configure().adefer(*args, **kwargs)

    def defer_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[JobHandle]:
        """Store many calls in one transaction (each a tuple of positional or a dict of keyword arguments)."""
        return self.configure().defer_many(calls)

    async def adefer_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[JobHandle]:
        """Async :meth:`defer_many`."""
        return await self.configure().adefer_many(calls)


def _split(call: Sequence[Any] | Mapping[str, Any]) -> tuple[Sequence[Any], Mapping[str, Any]]:
    if isinstance(call, Mapping):
        return (), call
    if isinstance(call, (list, tuple)):
        return call, {}
    raise ValidationError(
        f"each call must be a tuple of arguments or a dict of keyword arguments, got {call!r}", field="calls"
    )


@dataclass(frozen=True, slots=True)
class Deferral:
    """A job type with the options of one :meth:`Task.configure`: defer calls with them."""

    task: Task[..., Any]
    priority: int
    queue: str
    delay: float | None
    at: float | None
    key: str | None
    jobs: Jobs | None

    def _jobs(self) -> Jobs:
        if self.jobs is not None:
            return self.jobs
        from buttress.jobs._jobs import get_jobs  # noqa: PLC0415 - the service builds on this module

        return get_jobs()

    def defer(self, *args: Any, **kwargs: Any) -> JobHandle:
        """Store one call; see :meth:`Task.defer`."""
        return self._jobs().defer(self, [(args, kwargs)])[0]

    async def adefer(self, *args: Any, **kwargs: Any) -> JobHandle:
        """Async :meth:`defer`."""
        return (await self._jobs().adefer(self, [(args, kwargs)]))[0]

    def defer_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[JobHandle]:
        """Store many calls at once (all or none)."""
        return self._jobs().defer(self, [_split(call) for call in calls])

    async def adefer_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[JobHandle]:
        """Async :meth:`defer_many`."""
        return await self._jobs().adefer(self, [_split(call) for call in calls])


class JobDecorator(Protocol):
    """What ``@job(...)`` returns: a decorator typed like ``@job`` itself."""

    @overload
    def __call__(self, fn: Callable[Concatenate[JobContext, P], R], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def job(fn: Callable[Concatenate[JobContext, P], R], /) -> Task[P, R]: ...
@overload
def job(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def job(
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = 0,
    retry: int | Retry | None = None,
    timeout: float | timedelta | None = None,
    concurrency: int | None = None,
    result_ttl: float | timedelta | None = None,
    process: bool = False,
) -> JobDecorator: ...
def job(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = 0,
    retry: int | Retry | None = None,
    timeout: float | timedelta | None = None,
    concurrency: int | None = None,
    result_ttl: float | timedelta | None = None,
    process: bool = False,
) -> Task[..., Any] | JobDecorator:
    """Make a function a job type (``@job`` or ``@job(queue=..., ...)``).

    ``retry``: attempts (exponential backoff from 1 s) or a :class:`~buttress.resilience.Retry` whose
    ``attempts``, ``backoff`` and ``on`` decide; unset: the ``jobs.attempts`` setting. ``timeout``: seconds
    an attempt may run (async: cancelled; sync: ``ctx.cancelled`` turns true, and a ``process=True`` job's
    subprocess is terminated). ``concurrency``: at most this many of its jobs run at once across every
    worker. ``result_ttl``: seconds its finished row is kept (default: the ``jobs.result_ttl`` setting).
    A first parameter annotated :class:`~buttress.jobs.JobContext` receives the job's context.
    """

    def decorate(function: Callable[..., Any]) -> Task[..., Any]:
        return Task(
            function,
            name=name,
            queue=queue,
            priority=priority,
            retry=retry,
            timeout=timeout,
            concurrency=concurrency,
            result_ttl=result_ttl,
            process=process,
        )

    return cast("JobDecorator", decorate) if fn is None else decorate(fn)
