"""Scopes (one unit of work), the current scope as a ContextVar, and closing what was built."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Self, TypeVar

from buttress.container._errors import _needs_async_close, _not_registered
from buttress.container._wiring import _MISSING

if TYPE_CHECKING:
    from buttress.container._core import Container

T = TypeVar("T")
_SCOPE: ContextVar[Scope | None] = ContextVar("buttress_scope", default=None)
_HELD: ContextVar[frozenset[int]] = ContextVar("buttress_container_locks", default=frozenset())


def current_scope() -> Scope | None:
    """The innermost scope entered in this context (of any container), or None outside every scope.

    It names the current unit of work (a request, a job) for code that keeps per-unit state without
    resolving anything, such as the database's N+1 detector and its read-your-writes position.
    """
    return _SCOPE.get()


class Scope:
    """One unit of work (a request, a job): SCOPED instances live here and close when it exits.

    Entering makes it the current scope of its container (a ContextVar), so ``container.resolve()`` deep
    in the call stack finds it. Transients created while it is current and having ``close()``/``aclose()``
    are closed with it too; nested scopes are independent.
    """

    __slots__ = (
        "_alock",
        "_closables",
        "_closed",
        "_container",
        "_instances",
        "_locals",
        "_lock",
        "_parent",
        "_token",
        "name",
    )

    def __init__(self, container: Container, name: str = "scope") -> None:
        self.name = name
        self._container = container
        self._instances: dict[Any, Any] = {}
        self._locals: dict[object, Any] = {}
        self._closables: list[Any] = []
        self._lock = threading.RLock()  # only for threads sharing a scope; cheaper than creating it lazily
        self._alock: asyncio.Lock | None = None
        self._parent: Scope | None = None
        self._token: Token[Scope | None] | None = None
        self._closed = False

    @property
    def container(self) -> Container:
        return self._container

    def resolve(self, service_type: type[T]) -> T:
        container = self._container
        instance: T = container._singletons.get(service_type, _MISSING)
        if instance is _MISSING or container._overrides:
            reg = (
                container._lookup(service_type)
                if container._overrides
                else container._registrations.get(service_type)
            )
            reg = reg or container._demand(service_type) or _not_registered(service_type)
            instance = container._get(reg, self, ())
        return instance

    async def aresolve(self, service_type: type[T]) -> T:
        instance: T = await self._container._aresolve(service_type, self)
        return instance

    def local(self, key: object, factory: Callable[[], T]) -> T:
        """Per-unit state another package keeps on this scope under ``key``: made once, dropped with it.

        The database's N+1 counts and read-your-writes position live here, with nothing to register.
        """
        found: T | None = self._locals.get(key)
        if found is None:
            found = self._locals.setdefault(key, factory())
        return found

    def _track(self, instance: Any) -> None:
        if hasattr(instance, "close") or hasattr(instance, "aclose"):
            self._closables.append(instance)

    def _async_lock(self) -> asyncio.Lock:
        if self._alock is None:
            self._alock = asyncio.Lock()
        return self._alock

    def _enter(self) -> Self:
        self._parent = _SCOPE.get()
        self._token = _SCOPE.set(self)
        return self

    def _exit(self) -> list[Any]:
        if self._token is not None:
            _SCOPE.reset(self._token)
            self._token = None
        self._closed = True
        closables, self._closables = self._closables, []
        return closables

    def close(self) -> None:
        """Close what the scope created, in reverse creation order; an ``aclose()``-only one raises."""
        _raise_first(_close_sync(self._exit()))

    async def aclose(self) -> None:
        _raise_first(await _close_async(self._exit()))

    __enter__ = _enter

    def __exit__(self, *exc_info: object) -> None:
        closables = self._exit()
        if closables:
            _raise_first(_close_sync(closables))

    async def __aenter__(self) -> Self:
        return self._enter()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@asynccontextmanager
async def _hold(lock: asyncio.Lock) -> AsyncIterator[None]:
    """Acquire ``lock`` unless this task (context) already holds it: asyncio locks are not re-entrant."""
    held = _HELD.get()
    if id(lock) in held:
        yield
        return
    async with lock:
        token = _HELD.set(held | {id(lock)})
        try:
            yield
        finally:
            _HELD.reset(token)


def _close_sync(objects: list[Any]) -> list[Exception]:
    errors: list[Exception] = []
    for obj in reversed(objects):
        close = getattr(obj, "close", None)
        if close is None or inspect.iscoroutinefunction(close):
            errors.append(_needs_async_close(obj))
            continue
        try:
            result = close()
        except Exception as exc:  # noqa: BLE001 - keep closing the rest; re-raised by _raise_first
            errors.append(exc)
            continue
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: silence the warning, report the real problem below
            errors.append(_needs_async_close(obj))
    return errors


async def _close_async(objects: list[Any]) -> list[Exception]:
    errors: list[Exception] = []
    for obj in reversed(objects):
        try:
            aclose = getattr(obj, "aclose", None)
            result = aclose() if aclose is not None else obj.close()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - keep closing the rest; re-raised by _raise_first
            errors.append(exc)
    return errors


def _raise_first(errors: list[Exception]) -> None:
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"also failed while closing: {type(other).__name__}: {other}")
        raise first
