"""Cache warmers: functions that fill a cache before (or while) traffic needs it.

``@cache.warmer("popular")`` registers a function with no arguments: sync or ``async def``, or a generator
(sync or async) whose every ``yield`` reports progress as ``done`` or ``(done, total)``; a plain function
reports one item when it returns. The registry lives in the cache's ``warmers`` slot, shared by the cache's
namespaced siblings.

A run takes the warmers one after the other (warming is meant to spare the upstream, not hammer it); a
failing warmer is logged and reported, and the next one still runs. One run at a time per cache: a second
one while the first is going raises :class:`~buttress.errors.ConflictError`. Each warmer publishes
``cache.warm.started``, ``cache.warm.progress`` (at most every :data:`PROGRESS_INTERVAL` seconds, plus the
final count), then ``cache.warm.finished`` or ``cache.warm.failed``, and counts its outcome in
``buttress_cache_warm_runs_total{warmer,outcome}``.

``stop=`` (a no-argument callable) lets a caller end a run early: it is asked before each warmer and after
each ``yield``; once it answers true the warmer's generator is closed, its run is recorded as
``cancelled`` (``cache.warm.cancelled``) and :class:`WarmCancelled` propagates, so the rest do not run. A
plain function or coroutine runs to its end. ``buttress.jobs.warm_job`` uses it for a job's cancel.

Startup warming (:func:`start_startup_warming`) runs in a daemon thread so it never delays startup; the
ops server starts it for every cache of the process that has warmers (:func:`warmer_caches`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeGuard, TypeVar

from buttress._own_loop import run_on_own_loop
from buttress.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from buttress.cache._cache import Cache

__all__ = [
    "PROGRESS_INTERVAL",
    "WARM_RUNS_METRIC",
    "WarmCancelled",
    "WarmProgress",
    "WarmResult",
    "WarmStart",
    "Warmer",
    "arun_warmers",
    "run_all_warmers",
    "run_warmers",
    "start_cache_warming",
    "start_startup_warming",
    "start_warming",
    "warmer",
    "warmer_caches",
    "warmers_of",
]

_log = logging.getLogger("buttress.cache")

PROGRESS_INTERVAL: Final = 0.5
"""Seconds between two ``cache.warm.progress`` events of one warmer (the final count is always sent)."""
WARM_RUNS_METRIC: Final = "buttress_cache_warm_runs_total"

F = TypeVar("F", bound=Callable[..., Any])
Outcome = Literal["ok", "failed", "cancelled"]
Phase = Literal["started", "progress", "finished", "failed", "cancelled"]
Stop = Callable[[], bool]


class WarmCancelled(Exception):
    """A warm run's ``stop()`` turned true: the warmer ``name`` stopped after ``items`` items."""

    def __init__(self, name: str, items: int) -> None:
        super().__init__(f"cache warmer {name!r} was stopped after {items} items")
        self.name = name
        self.items = items


@dataclass(frozen=True, slots=True)
class WarmResult:
    """How one warmer's run ended: ``items`` is its last ``done``; ``error`` is ``"Type: message"``."""

    name: str
    outcome: Outcome
    items: int
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outcome": self.outcome,
            "items": self.items,
            "seconds": self.seconds,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class WarmProgress:
    """What a ``progress=`` callback receives: on start, on every yield, and at the end."""

    name: str
    phase: Phase
    done: int
    total: int | None
    seconds: float


@dataclass(eq=False)
class Warmer:
    """A registered warmer and the state of its runs in this process."""

    name: str
    fn: Callable[[], Any]
    on_startup: bool = True
    running: bool = False
    last: WarmResult | None = None


@dataclass(eq=False)
class WarmerRegistry:
    """The warmers of one cache (and its siblings), and whether a run is in progress."""

    cache: Cache
    warmers: dict[str, Warmer] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: list[str] | None = None
    """Names of the warmers of the run in progress, None when idle."""

    def select(self, names: Iterable[str] | None, *, startup: bool = False) -> list[Warmer]:
        """The warmers to run, in registration order; unknown names raise NotFoundError."""
        with self.lock:
            warmers = dict(self.warmers)
        if names is None:
            return [w for w in warmers.values() if w.on_startup or not startup]
        wanted = _check_names(names)
        unknown = [name for name in wanted if name not in warmers]
        if unknown:
            raise _unknown(unknown, list(warmers))
        return [w for name, w in warmers.items() if name in wanted]

    def claim(self, selected: Sequence[Warmer]) -> None:
        with self.lock:
            if self.active is not None:
                raise ConflictError(
                    f"a cache warm run is already in progress ({', '.join(self.active)}); wait for it to "
                    "finish (GET /cache/stats shows each warmer's state) and try again",
                    context={"running": list(self.active)},
                )
            self.active = [w.name for w in selected]

    def release(self) -> None:
        with self.lock:
            self.active = None


_live: weakref.WeakSet[WarmerRegistry] = weakref.WeakSet()
_live_lock = threading.Lock()


def _registry(cache: Cache) -> WarmerRegistry:
    shared = cache._shared
    registry = shared.warmers
    if registry is None:
        with _live_lock:
            registry = shared.warmers
            if registry is None:
                registry = shared.warmers = WarmerRegistry(cache)
                _live.add(registry)
    return registry


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValidationError(
            f"a warmer name must be a non-empty string without surrounding spaces, got {name!r}; "
            "e.g. @cache.warmer('popular')",
            field="name",
        )
    return name


def _check_names(names: Iterable[str]) -> list[str]:
    """Names to look up: any string is fine (one that cannot be registered is simply not found)."""
    found = None if isinstance(names, str) else list(names)
    if found is None or not all(isinstance(name, str) for name in found):
        raise ValidationError(
            f"names must be a list of warmer names, got {names!r}; e.g. names=['popular']", field="names"
        )
    return found


def _unknown(unknown: Sequence[str], registered: Sequence[str]) -> NotFoundError:
    known = ", ".join(registered) if registered else "none (register one with @cache.warmer('name'))"
    return NotFoundError(
        "cache warmer",
        ", ".join(unknown),
        message=f"no cache warmer named {', '.join(map(repr, unknown))}; registered: {known}",
        context={"registered": list(registered)},
    )


def warmer(cache: Cache, name: str, *, on_startup: bool = True) -> Callable[[F], F]:
    """Register the decorated no-argument function as warmer ``name`` of ``cache`` (returned unchanged).

    Registering a name again replaces the warmer only if it is the same function (a module imported
    twice); another function under a taken name raises ConflictError.
    """
    _check_name(name)
    if not isinstance(on_startup, bool):
        raise ValidationError(f"on_startup must be True or False, got {on_startup!r}", field="on_startup")
    registry = _registry(cache)

    def register(fn: F) -> F:
        if not callable(fn):
            raise ValidationError(f"@cache.warmer decorates functions, got {fn!r}", field="fn")
        with registry.lock:
            taken = registry.warmers.get(name)
            if taken is not None and _identity(taken.fn) != _identity(fn):
                raise ConflictError(
                    f"cache warmer {name!r} is already registered by {_identity(taken.fn)}; "
                    f"pick another name for {_identity(fn)}",
                    context={"warmer": name},
                )
            registry.warmers[name] = Warmer(name, fn, on_startup)
        return fn

    return register


def _identity(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def warmers_of(cache: Cache) -> dict[str, Warmer]:
    """The warmers registered on ``cache`` (or a sibling), by name, in registration order."""
    registry = cache._shared.warmers
    if registry is None:
        return {}
    with registry.lock:
        return dict(registry.warmers)


def forget_warmers(cache: Cache) -> None:
    """A closed cache is no longer warmed: ``buttress cache warm`` and ``POST /cache/warm`` skip it."""
    registry = cache._shared.warmers
    if registry is not None:
        with _live_lock:
            _live.discard(registry)


def warmer_caches() -> list[Cache]:
    """Every live cache of this process that has warmers (what ``buttress cache warm`` and startup run)."""
    with _live_lock:
        registries = list(_live)
    return [registry.cache for registry in registries if registry.warmers]


# -- one warmer's run ---------------------------------------------------------------------------------------


class _Run:
    """Progress bookkeeping, events and the metric of one warmer's run."""

    def __init__(
        self,
        registry: WarmerRegistry,
        warmer: Warmer,
        progress: Callable[[WarmProgress], None] | None,
        stop: Stop | None = None,
    ) -> None:
        self.cache = registry.cache
        self.warmer = warmer
        self.progress = progress
        self.stop = stop
        self.monotonic = self.cache.clock.monotonic
        self.started = self.monotonic()
        self.done = 0
        self.total: int | None = None
        self.sent_at: float | None = None
        self.sent_done = 0
        self.result: WarmResult | None = None

    def seconds(self) -> float:
        return round(max(self.monotonic() - self.started, 0.0), 6)

    def __enter__(self) -> Self:
        self.warmer.running = True
        self._publish("started", {})
        self._tell("started")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        """Record the outcome; swallow an Exception (one failing warmer must not stop the others).

        A :class:`WarmCancelled` is recorded and propagates: the caller asked the whole run to stop.
        """
        if exc is None:
            self.result = self._finish()
            return False
        if isinstance(exc, WarmCancelled):
            self.result = self._cancelled()
            return False
        if isinstance(exc, Exception):
            self.result = self._fail(exc)
            return True
        self.warmer.running = False  # KeyboardInterrupt, cancellation: propagate
        return False

    def step(self, value: object) -> None:
        """One ``yield`` of a generator warmer: ``done`` or ``(done, total)``."""
        self.done, self.total = _progress_value(self.warmer.name, value, self.total)
        self._tell("progress")
        now = self.monotonic()
        if self.sent_at is None or now - self.sent_at >= PROGRESS_INTERVAL:
            self._send_progress(now)
        self.check_stop()

    def check_stop(self) -> None:
        """Raise :class:`WarmCancelled` when the caller's ``stop()`` says so."""
        if self.stop is not None and self.stop():
            raise WarmCancelled(self.warmer.name, self.done)

    def returned(self) -> None:
        """A plain function (or coroutine) returned: one item done."""
        self.done = max(self.done, 1)

    def _send_progress(self, now: float) -> None:
        self.sent_at, self.sent_done = now, self.done
        self._publish("progress", {"done": self.done, "total": self.total})

    def _finish(self) -> WarmResult:
        if self.sent_at is None or self.sent_done != self.done:
            self._send_progress(self.monotonic())
        result = WarmResult(self.warmer.name, "ok", self.done, self.seconds())
        self._publish("finished", {"items": result.items})
        _log.info("cache warmer %s: %d items in %.2f s", result.name, result.items, result.seconds)
        return self._end(result, "finished")

    def _fail(self, exc: Exception) -> WarmResult:
        error = f"{type(exc).__name__}: {exc}"
        result = WarmResult(self.warmer.name, "failed", self.done, self.seconds(), error)
        self._publish("failed", {"items": result.items, "error": error})
        _log.warning("cache warmer %s failed after %d items: %s", result.name, result.items, error)
        _log.debug("cache warmer %s failed", result.name, exc_info=exc)
        return self._end(result, "failed")

    def _cancelled(self) -> WarmResult:
        result = WarmResult(self.warmer.name, "cancelled", self.done, self.seconds(), "cancelled")
        self._publish("cancelled", {"items": result.items})
        _log.info("cache warmer %s stopped after %d items", result.name, result.items)
        return self._end(result, "cancelled")

    def _end(self, result: WarmResult, phase: Phase) -> WarmResult:
        self.warmer.last = result
        self.warmer.running = False
        self._count(result.outcome)
        self._tell(phase)
        return result

    def _tell(self, phase: Phase) -> None:
        if self.progress is None:
            return
        try:
            self.progress(WarmProgress(self.warmer.name, phase, self.done, self.total, self.seconds()))
        except Exception:  # noqa: BLE001 - a broken progress display must not fail the warming it shows
            _log.debug("the progress callback of cache warmer %s failed", self.warmer.name, exc_info=True)

    def _publish(self, phase: str, payload: dict[str, Any]) -> None:
        from buttress.events import publish_quietly  # noqa: PLC0415 - only when warming

        body = {"warmer": self.warmer.name, **payload, "seconds": self.seconds()}
        publish_quietly(self.cache.events, f"cache.warm.{phase}", body)

    def _count(self, outcome: Outcome) -> None:
        try:
            registry = self.cache.metrics
            if registry is None:
                from buttress.observe.metrics import get_metrics  # noqa: PLC0415 - prometheus-client only when a run is counted

                registry = get_metrics()
            runs = registry.counter(
                WARM_RUNS_METRIC, "Cache warmer runs, by warmer and outcome.", labels=("warmer", "outcome")
            )
            runs.labels(warmer=self.warmer.name, outcome=outcome).inc()
        except Exception:  # noqa: BLE001 - counting a run must not turn it into a failure
            _log.debug("could not count the run of cache warmer %s", self.warmer.name, exc_info=True)


def _progress_value(name: str, value: object, total: int | None) -> tuple[int, int | None]:
    done: object = value
    if isinstance(value, tuple) and len(value) == 2:  # (done, total)
        done, total_value = value
        if not _count_like(total_value):
            raise _bad_yield(name, value)
        total = total_value
    if not _count_like(done):
        raise _bad_yield(name, value)
    return done, total


def _count_like(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _bad_yield(name: str, value: object) -> ValidationError:
    return ValidationError(
        f"cache warmer {name!r} yielded {value!r}; yield the items done so far (an int >= 0) or "
        "(done, total), e.g. yield (i, len(ids))",
        field="yield",
    )


def _is_async(result: object) -> bool:
    return inspect.isawaitable(result) or inspect.isasyncgen(result)


def _consume(result: object, run: _Run) -> None:
    """Drive what a sync warmer returned: a generator's yields, or nothing (one item)."""
    if inspect.isgenerator(result):
        try:
            for step in result:
                run.step(step)
        finally:
            result.close()
    else:
        run.returned()


async def _aconsume(result: object, run: _Run) -> None:
    """Drive what an async warmer returned: an async generator's yields, or a coroutine."""
    if inspect.isasyncgen(result):
        steps: AsyncIterator[object] = result
        try:
            async for step in steps:
                run.step(step)
        finally:
            await result.aclose()
    else:
        await _awaited(result)
        run.returned()


async def _awaited(result: object) -> None:
    assert inspect.isawaitable(result)  # noqa: S101 - _is_async said so
    await result


def _run_coroutine(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)``, or on a loop of its own when this thread already runs one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main)
    else:
        run_on_own_loop(main, thread_name="buttress-cache-warm-loop")


def _stop_before(warmer: Warmer, stop: Stop | None) -> None:
    """A stopped run does not start its next warmer (nothing is recorded for that one)."""
    if stop is not None and stop():
        raise WarmCancelled(warmer.name, 0)


def _run_one(
    registry: WarmerRegistry,
    warmer: Warmer,
    progress: Callable[[WarmProgress], None] | None,
    stop: Stop | None = None,
) -> WarmResult:
    _stop_before(warmer, stop)
    with _Run(registry, warmer, progress, stop) as run:
        result = warmer.fn()
        if _is_async(result):
            _run_coroutine(_aconsume(result, run))
        else:
            _consume(result, run)
    assert run.result is not None  # noqa: S101 - set by __exit__
    return run.result


async def _arun_one(
    registry: WarmerRegistry,
    warmer: Warmer,
    progress: Callable[[WarmProgress], None] | None,
    stop: Stop | None = None,
) -> WarmResult:
    def call_sync(run: _Run) -> object:
        result = warmer.fn()
        if _is_async(result):
            return result
        _consume(result, run)
        return None

    _stop_before(warmer, stop)
    with _Run(registry, warmer, progress, stop) as run:
        if inspect.iscoroutinefunction(warmer.fn) or inspect.isasyncgenfunction(warmer.fn):
            pending: object = warmer.fn()
        else:
            pending = await asyncio.to_thread(call_sync, run)
        if pending is not None:
            await _aconsume(pending, run)
    assert run.result is not None  # noqa: S101 - set by __exit__
    return run.result


# -- runs -------------------------------------------------------------------------------------------------


def run_warmers(
    cache: Cache,
    names: Iterable[str] | None = None,
    progress: Callable[[WarmProgress], None] | None = None,
    *,
    stop: Stop | None = None,
) -> list[WarmResult]:
    """Run the warmers of ``cache`` (all, or ``names``) one after the other; blocks until they are done.

    Async warmers run under ``asyncio.run`` inside this call. Unknown names raise NotFoundError before
    anything runs; a run already in progress raises ConflictError; ``stop`` ends it early (see above).
    """
    registry = _registry(cache)
    selected = registry.select(names)
    registry.claim(selected)
    try:
        return [_run_one(registry, w, progress, stop) for w in selected]
    finally:
        registry.release()


async def arun_warmers(
    cache: Cache,
    names: Iterable[str] | None = None,
    progress: Callable[[WarmProgress], None] | None = None,
    *,
    stop: Stop | None = None,
) -> list[WarmResult]:
    """:func:`run_warmers` on the running loop; sync warmers run in a worker thread."""
    registry = _registry(cache)
    selected = registry.select(names)
    registry.claim(selected)
    try:
        return [await _arun_one(registry, w, progress, stop) for w in selected]
    finally:
        registry.release()


def _start(registry: WarmerRegistry, selected: list[Warmer]) -> threading.Thread:
    """Run the already-claimed ``selected`` warmers in a daemon thread."""

    def target() -> None:
        try:
            for w in selected:
                _run_one(registry, w, None)
        finally:
            registry.release()

    names = ",".join(w.name for w in selected)
    thread = threading.Thread(target=target, name=f"buttress-cache-warm:{names[:40]}", daemon=True)
    thread.start()
    return thread


def start_startup_warming(cache: Cache) -> threading.Thread | None:
    """Run the ``on_startup`` warmers of ``cache`` in a daemon thread and return at once.

    None when there are none, or when a run is already in progress (it warms the cache already).
    """
    registry = _registry(cache)
    selected = registry.select(None, startup=True)
    if not selected:
        return None
    try:
        registry.claim(selected)
    except ConflictError:
        return None
    return _start(registry, selected)


def start_cache_warming() -> list[threading.Thread]:
    """:func:`start_startup_warming` for every cache with warmers (what the ops server's startup calls)."""
    threads = [start_startup_warming(cache) for cache in warmer_caches()]
    return [thread for thread in threads if thread is not None]


@dataclass(frozen=True, slots=True)
class WarmStart:
    """What :func:`start_warming` started: the warmers' names and the threads running them."""

    names: list[str]
    threads: list[threading.Thread]


def _claim_plans(
    names: Sequence[str] | None, caches: Sequence[Cache] | None
) -> list[tuple[WarmerRegistry, list[Warmer]]]:
    """The warmers to run per cache, every registry involved claimed; nothing claimed on an error."""
    registries = [_registry(cache) for cache in (warmer_caches() if caches is None else caches)]
    wanted = None if names is None else _check_names(names)
    known = [name for registry in registries for name in warmers_of(registry.cache)]
    if wanted is not None:
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise _unknown(unknown, known)
    plans = [(registry, _subset(registry, wanted)) for registry in registries]
    plans = [(registry, selected) for registry, selected in plans if selected]
    claimed: list[WarmerRegistry] = []
    try:
        for registry, selected in plans:
            registry.claim(selected)
            claimed.append(registry)
    except ConflictError:
        for registry in claimed:
            registry.release()
        raise
    return plans


def start_warming(names: Sequence[str] | None = None, *, caches: Sequence[Cache] | None = None) -> WarmStart:
    """Start warmers of ``caches`` (default: every cache with warmers) in the background.

    All named warmers must exist (NotFoundError lists the registered ones) and no cache involved may have
    a run in progress (ConflictError); either way nothing starts.
    """
    plans = _claim_plans(names, caches)
    threads = [_start(registry, selected) for registry, selected in plans]
    return WarmStart([w.name for _, selected in plans for w in selected], threads)


def run_all_warmers(
    names: Sequence[str] | None = None,
    *,
    caches: Sequence[Cache] | None = None,
    progress: Callable[[WarmProgress], None] | None = None,
    stop: Stop | None = None,
) -> list[WarmResult]:
    """:func:`run_warmers` over ``caches`` (default: every cache with warmers), in this thread."""
    plans = _claim_plans(names, caches)
    try:
        return [_run_one(registry, w, progress, stop) for registry, selected in plans for w in selected]
    finally:
        for registry, _ in plans:
            registry.release()


def _subset(registry: WarmerRegistry, wanted: list[str] | None) -> list[Warmer]:
    if wanted is None:
        return registry.select(None)
    return registry.select([name for name in wanted if name in registry.warmers])
