"""A switchable in-process profiler: wall and CPU time per function or block, cheap enough to leave in.

Decorate with :func:`profiled` or wrap code in :func:`profile_block`; both record into the process-wide
:func:`get_profiler` unless given another :class:`Profiler`. A profiler starts stopped, and while stopped a
profiled call costs one attribute read on top of the call itself, so decorators can stay in production code
and the profiler is switched on at run time (by the ops server, a signal, a test) when someone is looking.

What is measured, per name:

- **Wall time** (``timer``, :func:`time.perf_counter` by default): count, total, mean, min and max are exact
  over every call since the last :meth:`Profiler.reset`; p50/p95/p99 are exact nearest-rank quantiles over
  the last ``window`` calls (a ring buffer, 2,048 by default). A sliding window rather than a uniform
  reservoir because an operator asks "how slow is it now", and a window answers that after a deploy or an
  incident while a reservoir over all time keeps remembering the old behaviour. Memory is ``window`` floats
  per name and at most ``max_names`` names.
- **CPU time** (``cpu_timer``, :func:`time.thread_time` by default): the calling thread's CPU. For async
  functions the coroutine is stepped by hand and CPU is summed over its own steps only, so time the event
  loop spends running *other* tasks while this one is suspended is not charged to it. CPU burnt on other
  threads (``run_in_executor``, ``to_thread``) is not counted either: it is not this thread's CPU.
  :func:`profile_block` cannot step the code it wraps, so a block that ``await`` s inside an ``async def``
  also counts the CPU of tasks that ran meanwhile; prefer :func:`profiled` on a coroutine function there.

Times are inclusive (nested profiled calls count in both), so a recursive function's total adds up every
level. Calls that raise are recorded too and counted in ``errors``.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, Literal, ParamSpec, TypeVar, cast, get_args, overload

from buttress import errors as buttress_errors
from buttress.container import get_container
from buttress.observe._forwarding import make_switch

__all__ = ["FunctionStats", "Profiler", "SortKey", "get_profiler", "profile_block", "profiled"]

P = ParamSpec("P")
R = TypeVar("R")

SortKey = Literal["total", "p99", "mean", "count", "cpu_total"]
_SORT_KEYS: tuple[str, ...] = get_args(SortKey)
DEFAULT_WINDOW = 2_048
DEFAULT_MAX_NAMES = 1_000
_FAILED, _SUCCEEDED = True, False  # the outcome argument of Profiler._add, named at the call sites


@dataclass(frozen=True, slots=True)
class FunctionStats:
    """What one name cost since the last reset; every duration is in seconds.

    ``count``, ``errors``, ``total``, ``mean``, ``min``, ``max`` and the ``cpu_*`` fields cover every call;
    ``p50``/``p95``/``p99`` cover the last ``samples`` calls. ``cpu_ratio`` is CPU over wall time: near 1 a
    function computes, near 0 it waits (I/O, locks, sleeps).
    """

    name: str
    count: int
    errors: int
    total: float
    mean: float
    min: float
    max: float
    p50: float
    p95: float
    p99: float
    cpu_total: float
    cpu_mean: float
    cpu_max: float
    cpu_ratio: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


class _Series:
    """Running totals and the recent-sample window for one name (guarded by the profiler's lock)."""

    __slots__ = ("count", "cpu_max", "cpu_total", "errors", "max", "min", "total", "window")

    def __init__(self, window: int) -> None:
        self.count = 0
        self.errors = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0
        self.cpu_total = 0.0
        self.cpu_max = 0.0
        self.window: deque[float] = deque(maxlen=window)

    def add(self, wall: float, cpu: float, failed: bool) -> None:
        # Comparisons rather than min()/max() (several times cheaper): this runs on every profiled call.
        self.count += 1
        if failed:
            self.errors += 1
        self.total += wall
        if wall < self.min:  # noqa: PLR1730
            self.min = wall
        if wall > self.max:  # noqa: PLR1730
            self.max = wall
        self.cpu_total += cpu
        if cpu > self.cpu_max:  # noqa: PLR1730
            self.cpu_max = cpu
        self.window.append(wall)

    def copy(self) -> _Series:
        """A copy to compute statistics from outside the lock (sorting the window there would block calls)."""
        twin = _Series.__new__(_Series)
        for attribute in _Series.__slots__:
            setattr(twin, attribute, getattr(self, attribute))
        twin.window = self.window.copy()
        return twin

    def stats(self, name: str) -> FunctionStats:
        recent = sorted(self.window)
        return FunctionStats(
            name=name,
            count=self.count,
            errors=self.errors,
            total=self.total,
            mean=self.total / self.count,
            min=self.min,
            max=self.max,
            p50=_nearest_rank(recent, 0.50),
            p95=_nearest_rank(recent, 0.95),
            p99=_nearest_rank(recent, 0.99),
            cpu_total=self.cpu_total,
            cpu_mean=self.cpu_total / self.count,
            cpu_max=self.cpu_max,
            cpu_ratio=self.cpu_total / self.total if self.total > 0 else 0.0,
            samples=len(recent),
        )


def _nearest_rank(ordered: list[float], quantile: float) -> float:
    """The smallest sample with at least ``quantile`` of the samples at or below it (an observed value)."""
    return ordered[max(math.ceil(quantile * len(ordered)) - 1, 0)]


class Profiler:
    """Collects timings by name; :meth:`start` and :meth:`stop` switch recording at run time.

    ``timer`` and ``cpu_timer`` are injectable so tests drive them by hand (``timer=fake_clock.monotonic``).
    ``window`` bounds the samples kept per name for quantiles; ``max_names`` bounds the names: names are
    meant to be code locations, so once it is reached new names are counted in ``dropped`` and not kept.
    """

    __slots__ = ("_cpu_timer", "_dropped", "_lock", "_max_names", "_running", "_series", "_timer", "_window")

    def __init__(
        self,
        *,
        enabled: bool = False,
        window: int = DEFAULT_WINDOW,
        max_names: int = DEFAULT_MAX_NAMES,
        timer: Callable[[], float] = time.perf_counter,
        cpu_timer: Callable[[], float] = time.thread_time,
    ) -> None:
        self._window = _positive_int(
            window, "window", "the number of recent samples kept per name, e.g. 2048"
        )
        self._max_names = _positive_int(max_names, "max_names", "how many distinct names to keep, e.g. 1000")
        self._timer = timer
        self._cpu_timer = cpu_timer
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}
        self._dropped = 0
        # Read by every profiled call; a plain slot so the stopped path is one attribute load.
        self._running = enabled

    @property
    def enabled(self) -> bool:
        """Whether calls are being recorded now."""
        return self._running

    @property
    def dropped(self) -> int:
        """Calls not recorded because ``max_names`` distinct names were already kept."""
        return self._dropped

    def start(self) -> None:
        """Record from now on; calls already in flight are not recorded."""
        self._running = True

    def stop(self) -> None:
        """Stop recording; collected statistics stay readable until :meth:`reset`."""
        self._running = False

    def reset(self) -> None:
        """Forget everything collected; recording stays on or off as it was."""
        with self._lock:
            self._series = {}
            self._dropped = 0

    def record(self, name: str, wall: float, cpu: float = 0.0, *, failed: bool = False) -> None:
        """Add one measurement by hand (what the decorators do); recorded even while stopped."""
        self._add(name, wall, cpu, failed)

    def _add(self, name: str, wall: float, cpu: float, failed: bool) -> None:
        # acquire/release rather than ``with``: measurably cheaper, and this runs on every profiled call.
        self._lock.acquire()
        try:
            series = self._series.get(name)
            if series is None:
                series = self._new_series(name)
            if series is not None:
                series.add(wall, cpu, failed)
        finally:
            self._lock.release()

    def _new_series(self, name: str) -> _Series | None:
        if len(self._series) >= self._max_names:
            self._dropped += 1
            return None
        series = self._series[name] = _Series(self._window)
        return series

    def stats(self, name: str) -> FunctionStats | None:
        """The statistics for one name, or None when it has not been recorded since the last reset."""
        with self._lock:
            series = self._series.get(name)
            copy = None if series is None else series.copy()
        return None if copy is None else copy.stats(name)

    def report(self, sort: SortKey = "total", limit: int | None = None) -> list[FunctionStats]:
        """Every recorded name, costliest first by ``sort``; ``limit`` keeps only the first ones."""
        _check_sort(sort)
        _check_limit(limit)
        return _ranked(self._rows(), sort, limit)

    def snapshot(self, limit: int | None = None) -> dict[str, Any]:
        """A JSON-ready view for the ops server: both rankings, by total time and by p99."""
        _check_limit(limit)
        rows = self._rows()
        return {
            "enabled": self._running,
            "window": self._window,
            "names": len(rows),
            "dropped": self._dropped,
            "by_total": [row.to_dict() for row in _ranked(rows, "total", limit)],
            "by_p99": [row.to_dict() for row in _ranked(rows, "p99", limit)],
        }

    def _rows(self) -> list[FunctionStats]:
        with self._lock:
            copies = [(name, series.copy()) for name, series in self._series.items()]
        return [series.stats(name) for name, series in copies]

    def format_report(self, sort: SortKey = "total", limit: int | None = 20) -> str:
        """A plain-text table of :meth:`report` for logs and terminals."""
        rows = self.report(sort, limit)
        if not rows:
            state = "running" if self._running else "stopped"
            return f"no profiled calls recorded (profiler {state})"
        return _render_table(rows)

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"Profiler({state}, names={len(self._series)}, window={self._window})"


def _ranked(rows: list[FunctionStats], sort: str, limit: int | None) -> list[FunctionStats]:
    ranked = sorted(rows, key=lambda row: (-getattr(row, sort), row.name))
    return ranked if limit is None else ranked[:limit]


_COLUMNS = ("name", "calls", "errors", "total", "mean", "p50", "p95", "p99", "max", "cpu", "cpu%")


def _render_table(rows: list[FunctionStats]) -> str:
    cells = [
        [
            row.name,
            str(row.count),
            str(row.errors),
            *(_duration(v) for v in (row.total, row.mean, row.p50, row.p95, row.p99, row.max, row.cpu_total)),
            f"{row.cpu_ratio * 100:.0f}%",
        ]
        for row in rows
    ]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(_COLUMNS)]

    def line(values: tuple[str, ...] | list[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = (value.rjust(width) for value, width in zip(values[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    return "\n".join([line(_COLUMNS), *(line(values) for values in cells)])


def _duration(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds * 1e6:.1f}µs"


def _check_sort(sort: object) -> None:
    if sort not in _SORT_KEYS:
        raise buttress_errors.ValidationError(
            f"sort must be one of {', '.join(map(repr, _SORT_KEYS))}, got {sort!r}; "
            "use 'total' for where time goes overall or 'p99' for the slowest tail",
            field="sort",
        )


def _check_limit(limit: object) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise buttress_errors.ValidationError(
            f"limit must be None (no limit) or an int >= 1, got {limit!r}", field="limit"
        )


def _positive_int(value: object, field: str, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise buttress_errors.ValidationError(
            f"{field} must be an int >= 1 ({meaning}), got {value!r}", field=field
        )
    return value


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise buttress_errors.ValidationError(
            f"name must be a non-empty str naming what is measured (e.g. 'db.load_user'), got {name!r}",
            field="name",
        )
    return name


def get_profiler() -> Profiler:
    """The process-wide profiler used by :func:`profiled` and :func:`profile_block` by default (stopped
    until started): the default container's :class:`Profiler`."""
    return get_container().resolve(Profiler)


# --- the decorator -------------------------------------------------------------------------------------


@overload
def profiled(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def profiled(
    *, name: str | None = None, profiler: Profiler | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def profiled(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    profiler: Profiler | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Time every call of a sync or async function while the profiler runs.

    Use bare (``@profiled``) or configured (``@profiled(name="db.load_user")``). The name defaults to
    ``module.qualname``; the profiler to :func:`get_profiler`, bound at decoration time.
    """
    if name is not None:
        _check_name(name)
    target = get_container().resolve(Profiler) if profiler is None else profiler  # get_profiler(), inlined

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        return _wrap(func, name or _qualified_name(func), target)

    return decorate if fn is None else decorate(fn)


def _qualified_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{qualname}"


def _wrap(func: Callable[P, R], name: str, profiler: Profiler) -> Callable[P, R]:
    if isinstance(func, staticmethod | classmethod):  # decorated above @staticmethod/@classmethod
        return cast("Callable[P, R]", type(func)(_wrap(func.__func__, name, profiler)))
    if not callable(func):
        raise buttress_errors.ValidationError(
            f"@profiled decorates a function, got {func!r}; for a block of code use profile_block(name)",
            field="fn",
        )
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise buttress_errors.ValidationError(
            f"@profiled would only time the creation of the generator {name!r}, not its iteration; "
            "wrap the loop that consumes it in profile_block(name) instead",
            field="fn",
        )
    if inspect.iscoroutinefunction(func):
        return cast("Callable[P, R]", _wrap_async(func, name, profiler))
    return _wrap_sync(func, name, profiler)


def _wrap_sync(func: Callable[P, R], name: str, profiler: Profiler) -> Callable[P, R]:
    timer, cpu_timer, record = profiler._timer, profiler._cpu_timer, profiler._add

    def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        wall_start = timer()
        cpu_start = cpu_timer()
        try:
            result = func(*args, **kwargs)
        except BaseException:
            cpu = cpu_timer() - cpu_start
            record(name, timer() - wall_start, cpu, _FAILED)
            raise
        cpu = cpu_timer() - cpu_start
        record(name, timer() - wall_start, cpu, _SUCCEEDED)
        return result

    return make_switch(func, timed, profiler, is_async=False, label=_qualified_name(func))


def _wrap_async(
    func: Callable[P, Coroutine[Any, Any, R]], name: str, profiler: Profiler
) -> Callable[P, Coroutine[Any, Any, R]]:
    timer, cpu_timer, record = profiler._timer, profiler._cpu_timer, profiler._add

    async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        wall_start = timer()
        cpu_spent = [0.0]
        try:
            result = await _step_metered(func(*args, **kwargs), cpu_timer, cpu_spent)
        except BaseException:
            record(name, timer() - wall_start, cpu_spent[0], _FAILED)
            raise
        record(name, timer() - wall_start, cpu_spent[0], _SUCCEEDED)
        return result

    return make_switch(func, timed, profiler, is_async=True, label=_qualified_name(func))


@types.coroutine
def _step_metered(
    coro: Coroutine[Any, Any, R], cpu_timer: Callable[[], float], spent: list[float]
) -> Generator[Any, Any, R]:
    """Drive ``coro`` as ``await`` would, adding the thread CPU of each of its steps to ``spent[0]``.

    Between steps the coroutine is suspended and the loop runs other tasks; their CPU is left out.
    """
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        step_start = cpu_timer()
        try:
            yielded = coro.send(to_send) if to_throw is None else coro.throw(to_throw)
        except StopIteration as done:
            return cast("R", done.value)
        finally:
            spent[0] += cpu_timer() - step_start
        try:
            to_send, to_throw = (yield yielded), None
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - cancellation and anything thrown in goes on to the coroutine
            to_send, to_throw = None, exc


# --- the block ---------------------------------------------------------------------------------------------


class _Block:
    """One running measurement of a ``with profile_block(...)`` body."""

    __slots__ = ("_cpu_start", "_name", "_profiler", "_wall_start")

    def __init__(self, profiler: Profiler, name: str) -> None:
        self._profiler = profiler
        self._name = name
        self._wall_start = 0.0
        self._cpu_start = 0.0

    def __enter__(self) -> None:
        self._wall_start = self._profiler._timer()
        self._cpu_start = self._profiler._cpu_timer()

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        profiler = self._profiler
        cpu = profiler._cpu_timer() - self._cpu_start
        profiler._add(self._name, profiler._timer() - self._wall_start, cpu, exc_type is not None)


class _Idle:
    """The shared do-nothing block handed out while the profiler is stopped (no allocation per use)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


_IDLE = _Idle()


def profile_block(name: str, *, profiler: Profiler | None = None) -> AbstractContextManager[None]:
    """Time the body of a ``with`` statement under ``name`` while the profiler runs.

    Usable inside ``async def`` too; there its CPU time is the thread's over the whole block, so if the
    block awaits, other tasks' CPU is included (see the module notes). Exceptions propagate and are counted.
    """
    target = get_profiler() if profiler is None else profiler
    if type(name) is not str or not name:  # the cheap test first; _check_name words the error
        _check_name(name)
    if not target._running:
        return _IDLE
    return _Block(target, name)
