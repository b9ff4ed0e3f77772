"""Deadlines armed only when a call waits: a real ``asyncio.timeout``, entered after the first step.

A timer can interrupt a coroutine only while it is suspended: the event loop does not run while the
coroutine does. So an attempt under a deadline is started by hand (:func:`first_step`, which is
``coro.send(None)``). If it finishes there, which is what a call answered from memory does, no timer could
ever have fired and none is armed (an ``asyncio.timeout`` costs about 1.2 us a call). If it suspends, the
caller enters :func:`asyncio.timeout` for the time left and awaits :class:`Rest`, which hands the future the
first step stopped on up to the task and passes down whatever the task sends or throws. Cancellation,
nesting and the task's cancel count stay asyncio's own: nothing here calls ``cancel`` or ``uncancel``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any, Final

__all__ = ["NOT_DONE", "Rest", "as_coroutine", "finish", "first_step"]

NOT_DONE: Final[Any] = object()
""":func:`first_step`'s ``pending`` for a call that finished without suspending."""


async def as_coroutine(awaitable: Awaitable[Any]) -> Any:
    """Any awaitable (a Future, an object with ``__await__``) as a coroutine, which can be stepped."""
    return await awaitable


def first_step(awaitable: Awaitable[Any]) -> tuple[Coroutine[Any, Any, Any], Any, Any]:
    """Run ``awaitable`` up to its first suspension: ``(coro, pending, result)``.

    ``pending`` is what it suspended on (:func:`finish` awaits the rest), or :data:`NOT_DONE` when it
    finished in that step, with ``result`` its return value. An exception raised in that step propagates.
    """
    coro = awaitable if type(awaitable) is CoroutineType else as_coroutine(awaitable)
    try:
        pending = coro.send(None)
    except StopIteration as stop:
        return coro, NOT_DONE, stop.value
    return coro, pending, None


class Rest:
    """The rest of a coroutine whose first step suspended on ``pending``, as an awaitable."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        self.pending = None
        while True:
            try:
                sent = yield pending  # the future (or None) the coroutine waits on, for the task
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task (a cancellation): passed on
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def finish(
    coro: Coroutine[Any, Any, Any], pending: Any, seconds: float
) -> tuple[Any, BaseException | None, bool]:
    """Await the rest of ``coro`` (suspended on ``pending``) for at most ``seconds``: ``(result, error,
    expired)``, where ``expired`` says the deadline cancelled it.

    A CancelledError that leaves the scope is someone else's (``asyncio.timeout`` turns its own into
    TimeoutError): it propagates. The scope's TimeoutError is reported as the cancellation it was raised
    from, the error the call itself saw. A call that swallowed the cancellation and returned gives its
    result, with ``expired`` True.
    """
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            result = await Rest(coro, pending)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - handed to the caller, who classifies it
        if not scope.expired():
            return None, exc, False
        if isinstance(exc, TimeoutError) and isinstance(exc.__cause__, asyncio.CancelledError):
            return None, exc.__cause__, True
        return None, exc, True
    return result, None, scope.expired()
