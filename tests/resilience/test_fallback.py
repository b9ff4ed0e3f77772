"""Fallback: a value or a computed answer for the errors named in ``on``; everything else propagates."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from buttress.errors import BulkheadFull, CircuitOpen, RateLimited, RetryExhausted, ValidationError
from buttress.resilience._fallback import Fallback
from tests.resilience._observed import Observed

REFUSALS = (CircuitOpen, RateLimited, BulkheadFull, RetryExhausted)


def make(observed: Observed, **options: Any) -> Fallback:
    return Fallback(name="prices", metrics=observed.registry, events=observed.bus, **options)


def raising(error: BaseException) -> Any:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    return fail


def araising(error: BaseException) -> Any:
    async def fail(*args: object, **kwargs: object) -> None:
        raise error

    return fail


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "text"),
    [
        ({"on": KeyError}, "value", "exactly one of value .* or function .*, got neither"),
        ({"on": KeyError, "value": 1, "function": str}, "function", "got both"),
        ({"on": KeyError, "function": 42}, "function", r"function must be callable as function\(error\)"),
        ({"on": 42, "value": 1}, "on", r"on must be an exception class, a tuple of them, or a predicate"),
        ({"on": int, "value": 1}, "on", "got <class 'int'>"),
        ({"on": (), "value": 1}, "on", "non-empty tuple of exception classes, got an empty tuple"),
        ({"on": (KeyError, int), "value": 1}, "on", "not every item is an exception class"),
        ({"on": KeyError, "value": 1, "name": "a b"}, "name", "name must be"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(options: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError, match=text) as caught:
        Fallback(**options)
    assert caught.value.field == field
    if field == "on":
        assert "e.g. on=(CircuitOpen, RateLimited, BulkheadFull, RetryExhausted)" in str(caught.value)


def test_on_is_required_and_value_defaults_to_unset() -> None:
    with pytest.raises(TypeError, match="'on'"):
        Fallback(value=1)  # type: ignore[call-arg]
    parameters = inspect.signature(Fallback).parameters
    assert parameters["on"].default is inspect.Parameter.empty
    assert repr(parameters["value"].default) == "<unset>"


def test_repr_shows_what_is_caught_and_the_answer() -> None:
    assert (
        repr(Fallback(on=KeyError, value=[]))
        == "Fallback(on=(<class 'KeyError'>,), value=[], name='default')"
    )
    assert "function=<class 'str'>" in repr(Fallback(on=KeyError, function=str))


# -- sync ---------------------------------------------------------------------------------------------


def test_value_replaces_a_matching_error(observed: Observed) -> None:
    fallback = make(observed, on=REFUSALS, value=[])
    assert fallback.call(raising(CircuitOpen("open", retry_after=3))) == []
    assert fallback.call(raising(RetryExhausted("gave up", attempts=3, last_error=None))) == []
    assert fallback.call(lambda: [1, 2]) == [1, 2]
    assert observed.calls("fallback") == {"used": 2.0, "passed": 1.0}
    assert observed.events() == [
        (
            "resilience.fallback.used",
            {
                "key": "prices",
                "function": "raising.<locals>.fail",
                "error": "CircuitOpen",
                "error_code": "circuit_open",
            },
        ),
        (
            "resilience.fallback.used",
            {
                "key": "prices",
                "function": "raising.<locals>.fail",
                "error": "RetryExhausted",
                "error_code": "retry_exhausted",
            },
        ),
    ]


def test_none_is_a_valid_value(observed: Observed) -> None:
    assert make(observed, on=KeyError, value=None).call(raising(KeyError("k"))) is None


def test_function_computes_the_answer_from_the_error(observed: Observed) -> None:
    seen: list[BaseException] = []

    def stale(error: BaseException) -> str:
        seen.append(error)
        return f"stale because {type(error).__name__}"

    fallback = make(observed, on=RateLimited, function=stale)
    error = RateLimited("slow down", retry_after=2)
    assert fallback.call(raising(error)) == "stale because RateLimited"
    assert seen == [error]


def test_errors_that_do_not_match_propagate_untouched(observed: Observed) -> None:
    fallback = make(observed, on=REFUSALS, value=[])
    error = TypeError("a bug, not an outage")
    with pytest.raises(TypeError) as caught:
        fallback.call(raising(error))
    assert caught.value is error
    assert fallback.telemetry.counts() == {"passed": 0, "used": 0}
    assert observed.events() == []


def test_subclasses_of_a_named_type_match(observed: Observed) -> None:
    fallback = make(observed, on=LookupError, value="default")
    assert fallback.call(raising(KeyError("k"))) == "default"
    assert fallback.call(raising(IndexError(0))) == "default"


def test_predicate_decides(observed: Observed) -> None:
    fallback = make(observed, on=lambda error: "retryable" in str(error), value="cached")
    assert fallback.call(raising(ConnectionError("retryable reset"))) == "cached"
    error = ConnectionError("fatal")
    with pytest.raises(ConnectionError) as caught:
        fallback.call(raising(error))
    assert caught.value is error


def test_predicate_never_sees_interrupts(observed: Observed) -> None:
    seen: list[BaseException] = []

    def everything(error: BaseException) -> bool:
        seen.append(error)
        return True

    fallback = make(observed, on=everything, value="swallowed")
    with pytest.raises(KeyboardInterrupt):
        fallback.call(raising(KeyboardInterrupt()))
    assert seen == []


def test_a_named_base_exception_type_is_caught(observed: Observed) -> None:
    fallback = make(observed, on=KeyboardInterrupt, value="explicitly asked for")
    assert fallback.call(raising(KeyboardInterrupt())) == "explicitly asked for"


def test_an_error_in_the_fallback_function_propagates_chained(observed: Observed) -> None:
    original = CircuitOpen("open", retry_after=1)

    def broken(error: BaseException) -> str:
        raise RuntimeError("cache is down too")

    with pytest.raises(RuntimeError, match="cache is down too") as caught:
        make(observed, on=CircuitOpen, function=broken).call(raising(original))
    assert caught.value.__context__ is original


def test_sync_call_with_an_async_function_is_refused(observed: Observed) -> None:
    async def later(error: BaseException) -> str:
        return "later"

    fallback = make(observed, on=KeyError, function=later)
    with pytest.raises(ValidationError, match="has an async function") as caught:
        fallback.call(lambda: "would have worked")
    assert caught.value.field == "function"

    def lookup() -> str:
        return "x"

    with pytest.raises(ValidationError, match="decorate an 'async def'"):
        fallback(lookup)


# -- async --------------------------------------------------------------------------------------------


async def test_async_value_sync_function_and_async_function(observed: Observed) -> None:
    async def stale(error: BaseException) -> str:
        await asyncio.sleep(0)
        return f"async stale ({type(error).__name__})"

    error = BulkheadFull("full")
    assert await make(observed, on=BulkheadFull, value=0).acall(araising(error)) == 0
    assert await make(observed, on=BulkheadFull, function=lambda e: "sync").acall(araising(error)) == "sync"
    assert (
        await make(observed, on=BulkheadFull, function=stale).acall(araising(error))
        == "async stale (BulkheadFull)"
    )


async def test_async_pass_through_and_non_matching(observed: Observed) -> None:
    fallback = make(observed, on=(CircuitOpen,), value="fallback")

    async def fine() -> str:
        return "fine"

    assert await fallback.acall(fine) == "fine"
    with pytest.raises(ValueError, match="bad"):
        await fallback.acall(araising(ValueError("bad")))
    assert fallback.telemetry.counts() == {"passed": 1, "used": 0}


async def test_async_predicate_lets_cancellation_through(observed: Observed) -> None:
    fallback = make(observed, on=lambda error: True, value="swallowed")
    with pytest.raises(asyncio.CancelledError):
        await fallback.acall(araising(asyncio.CancelledError()))
    assert await fallback.acall(araising(OSError("disk"))) == "swallowed"
    rejecting = make(observed, on=lambda error: False, value="never")
    with pytest.raises(OSError, match="disk"):
        await rejecting.acall(araising(OSError("disk")))


# -- decorator ----------------------------------------------------------------------------------------


async def test_decorator_keeps_signatures_for_functions_and_methods(observed: Observed) -> None:
    fallback = make(observed, on=KeyError, value="missing")

    @fallback
    def lookup(table: dict[str, str], key: str) -> str:
        """Look up."""
        return table[key]

    async def later(error: BaseException) -> str:
        return "async missing"

    @make(observed, on=KeyError, function=later)
    async def alookup(table: dict[str, str], key: str) -> str:
        return table[key]

    class Repo:
        @fallback
        def get(self, key: str) -> str:
            return {"a": "A"}[key]

    assert lookup({"a": "A"}, "a") == "A"
    assert lookup({}, "a") == "missing"
    assert await alookup({}, "a") == "async missing"
    assert Repo().get("a") == "A"
    assert Repo().get("b") == "missing"
    assert inspect.signature(lookup) == inspect.signature(lookup.__wrapped__)  # type: ignore[attr-defined]
    assert lookup.__name__ == "lookup"
    assert lookup.__doc__ == "Look up."
    assert inspect.iscoroutinefunction(alookup)
    with pytest.raises(ValidationError, match="needs a function"):
        fallback("not a function")  # type: ignore[arg-type]
