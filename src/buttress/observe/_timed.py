"""The timer behind :func:`buttress.observe.metrics.timed`: a decorator and a context manager in one.

It knows nothing about registries: it gets a *resolver* that returns where to record (a success and an
error observer, and the clock), so the metrics module decides how names, labels and the ``outcome`` label
map to series, and this module only measures.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, NamedTuple, ParamSpec, TypeVar, cast

__all__ = ["Timed", "TimedTarget"]

P = ParamSpec("P")
R = TypeVar("R")


class TimedTarget(NamedTuple):
    """Where one timing goes: observers for a normal exit and for an exception, and the clock to read."""

    success: Callable[[float], None]
    error: Callable[[float], None]
    now: Callable[[], float]


class Timed:
    """Records the seconds a block or a call takes, on success and on exception.

    As a decorator it wraps sync and async functions (chosen once, at decoration time) and each call is
    timed on its own, so one decorated function serves any number of threads and tasks. As a context
    manager (``with`` or ``async with``) one object times one block at a time: write
    ``with timed(...):`` where the block starts rather than sharing an entered object between threads.
    """

    __slots__ = ("_fixed", "_resolve", "_start", "_target")

    def __init__(
        self, target: TimedTarget | None = None, resolve: Callable[[], TimedTarget] | None = None
    ) -> None:
        if (target is None) == (resolve is None):
            raise TypeError("Timed needs exactly one of target and resolve")
        self._fixed = target
        self._resolve = resolve
        self._start: float | None = None
        self._target: TimedTarget | None = None

    def _current(self) -> TimedTarget:
        fixed = self._fixed
        if fixed is not None:
            return fixed
        return cast(Callable[[], TimedTarget], self._resolve)()

    def __enter__(self) -> Timed:
        if self._start is not None:
            raise RuntimeError(
                "this timed() block is already running; create one timed(...) per with-block "
                "(or decorate the function) instead of sharing one between threads or tasks"
            )
        target = self._fixed
        if target is None:
            target = cast(Callable[[], TimedTarget], self._resolve)()
        self._target = target
        self._start = target.now()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        target = cast(TimedTarget, self._target)
        elapsed = target.now() - cast(float, self._start)
        self._start = None
        self._target = None
        if exc_type is None:
            target.success(elapsed)
        else:
            target.error(elapsed)

    async def __aenter__(self) -> Timed:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        current = self._current
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_timed(*args: P.args, **kwargs: P.kwargs) -> Any:
                target = current()
                start = target.now()
                try:
                    result = await afn(*args, **kwargs)
                except BaseException:
                    target.error(target.now() - start)
                    raise
                target.success(target.now() - start)
                return result

            return cast(Callable[P, R], async_timed)

        @functools.wraps(fn)
        def sync_timed(*args: P.args, **kwargs: P.kwargs) -> R:
            target = current()
            start = target.now()
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                target.error(target.now() - start)
                raise
            target.success(target.now() - start)
            return result

        return sync_timed
