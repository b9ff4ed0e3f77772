"""Fallback: answer with a default (or a computed one) when a call fails in a way you chose to absorb.

``on`` is required and names what to absorb, so a bug (a TypeError, a KeyError) is never quietly turned
into a default. The usual choice is the errors the other strategies raise when they refuse or give up::

    Fallback(on=(CircuitOpen, RateLimited, BulkheadFull, RetryExhausted), value=[])

``on`` may also be a predicate ``on(error) -> bool``; it sees exceptions derived from ``Exception`` only,
so cancellation and interrupts always pass through (name a ``BaseException`` type to absorb those).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.resilience._decorate import check_name, wrap
from buttress.resilience._telemetry import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["Fallback"]

P = ParamSpec("P")
R = TypeVar("R")

ErrorMatcher = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]

_ON_EXAMPLE = "e.g. on=(CircuitOpen, RateLimited, BulkheadFull, RetryExhausted)"


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Final = _Unset()


def _is_error_type(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def _check_on(
    on: object,
) -> tuple[tuple[type[BaseException], ...], Callable[[BaseException], bool] | None]:
    """The exception types to catch, and the predicate that must accept a caught one (if any)."""
    if _is_error_type(on):
        return (on,), None  # type: ignore[return-value]
    if isinstance(on, tuple):
        if on and all(_is_error_type(item) for item in on):
            return on, None
        bad = "an empty tuple" if not on else f"{on!r} (not every item is an exception class)"
        raise ValidationError(
            f"on must be a non-empty tuple of exception classes, got {bad}; {_ON_EXAMPLE}", field="on"
        )
    if callable(on) and not isinstance(on, type):
        return (Exception,), on
    raise ValidationError(
        "on must be an exception class, a tuple of them, or a predicate taking the exception and returning "
        f"True to use the fallback, got {on!r}; {_ON_EXAMPLE}",
        field="on",
    )


class Fallback:
    """Return ``value`` (or ``function(error)``) instead of raising when the call fails with a matching error.

    Give exactly one of ``value`` and ``function``. ``function`` may be ``async def`` when the fallback is
    used through :meth:`acall` or on an async function; its own exceptions propagate (chained to the
    original error). Outcomes: ``passed`` (the call returned on its own) and ``used``; errors that do not
    match propagate untouched and are left for others to count.
    """

    __slots__ = (
        "_async_function",
        "_function",
        "_passed",
        "_predicate",
        "_types",
        "_used",
        "_value",
        "clock",
        "name",
        "telemetry",
    )

    def __init__(
        self,
        *,
        on: ErrorMatcher,
        value: Any = _UNSET,
        function: Callable[[BaseException], Any] | None = None,
        name: str = "default",
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self._types, self._predicate = _check_on(on)
        if (value is _UNSET) == (function is None):
            given = "both" if function is not None else "neither"
            raise ValidationError(
                f"Fallback needs exactly one of value (a fixed answer) or function (computes the answer "
                f"from the error), got {given}; e.g. Fallback(on=CircuitOpen, value=[])",
                field="value" if function is None else "function",
            )
        if function is not None and not callable(function):
            raise ValidationError(
                f"function must be callable as function(error) -> answer, got {function!r}; "
                "e.g. function=lambda error: cached_answer()",
                field="function",
            )
        self._value = value
        self._function = function
        self._async_function = function is not None and inspect.iscoroutinefunction(function)
        self.name = check_name(name)
        self.clock = clock
        self.telemetry = Telemetry("fallback", self.name, ("passed", "used"), metrics=metrics, events=events)
        self._passed = self.telemetry.tally("passed")
        self._used = self.telemetry.tally("used")

    def __repr__(self) -> str:
        answer = f"function={self._function!r}" if self._function is not None else f"value={self._value!r}"
        on = self._predicate if self._predicate is not None else self._types
        return f"Fallback(on={on!r}, {answer}, name={self.name!r})"

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn``; on a matching error return the fallback answer instead."""
        if self._async_function:
            raise self._needs_async(fn)
        try:
            result = fn(*args, **kwargs)
        except self._types as error:
            if self._predicate is not None and not self._predicate(error):
                raise
            self._use(fn, error)
            if self._function is None:
                return self._value  # type: ignore[no-any-return]
            return self._function(error)  # type: ignore[no-any-return]
        self._passed()
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn``; on a matching error return the fallback answer (awaited if ``function`` is async)."""
        try:
            result = await fn(*args, **kwargs)
        except self._types as error:
            if self._predicate is not None and not self._predicate(error):
                raise
            self._use(fn, error)
            if self._function is None:
                return self._value  # type: ignore[no-any-return]
            answer = self._function(error)
            if inspect.isawaitable(answer):
                answer = await answer
            return answer  # type: ignore[no-any-return]
        self._passed()
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function (or method); an async ``function`` needs an async one."""
        if self._async_function and callable(fn) and not inspect.iscoroutinefunction(fn):
            raise self._needs_async(fn)
        return wrap(fn, self.call, self.acall)

    def _use(self, fn: object, error: BaseException) -> None:
        self._used()
        self.telemetry.emit(
            "used",
            function=getattr(fn, "__qualname__", None) or repr(fn),
            error=type(error).__qualname__,
            error_code=getattr(error, "error_code", None),
        )

    def _needs_async(self, fn: object) -> ValidationError:
        return ValidationError(
            f"Fallback {self.name!r} has an async function ({self._function!r}), which a sync call cannot "
            f"await; decorate an 'async def' (not {getattr(fn, '__qualname__', fn)!r}) or use "
            "'await fallback.acall(...)', or give a sync function",
            field="function",
        )
