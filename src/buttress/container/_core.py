"""The Container: registrations, resolution (sync and async), overrides for tests, and closing."""

from __future__ import annotations

import asyncio
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self, TypeVar

from buttress.container import _scope
from buttress.container._errors import (
    _abstract_without_factory,
    _async_error,
    _captive,
    _cycle,
    _not_a_lifetime,
    _not_callable,
    _not_injectable,
    _not_registered,
    _scope_closed,
    _scope_required,
)
from buttress.container._scope import Scope, _close_async, _close_sync, _hold, _raise_first
from buttress.container._wiring import (
    _CONTAINER,
    _FALLBACK,
    _MISSING,
    _SINGLETON,
    _TRANSIENT,
    Lifetime,
    _Plan,
    _Registration,
)
from buttress.container._wiring import _plan as _build_plan

T = TypeVar("T")


class Changes:
    """A process-wide count of changes to what containers resolve, for callers that keep a resolved
    instance (the module-level ``@cached`` keeps ``get_cache()``'s answer) instead of resolving per call.

    Bumped after every registration, override, replacement, reset and close of any container, and after
    the default container is set or reset. Read :attr:`value` before resolving and resolve again once it
    differs: reading it is the whole per-call cost.
    """

    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def bump(self) -> None:
        with self._lock:
            self.value += 1


CHANGES = Changes()
"""What :class:`Changes` describes, for every container of this process."""

# Bound by assignment, not by ``from ... import``: CPython 3.11 compiles ``name.get()`` on an imported name
# as an attribute load plus a call (no LOAD_METHOD), which costs the hot path a bound-method object.
_SCOPE = _scope._SCOPE


class Container:
    """Registrations by type, built singletons, and the lock that makes singletons be built once.

    Thread safety: one re-entrant lock is held only while *creating* a singleton (already built ones are a
    lock-free dict lookup), so two singletons depending on each other in any order cannot deadlock. In
    ``aresolve`` an asyncio lock per event loop plays that role (re-entrant per task through a ContextVar),
    so async singletons of one loop are created one at a time.
    """

    def __init__(self) -> None:
        self._registrations: dict[Any, _Registration] = {}
        self._singletons: dict[Any, Any] = {}
        self._closables: list[Any] = []
        self._overrides: dict[Any, _Registration] = {}
        self._override_stack: list[_Registration] = []
        self._override_singletons: dict[Any, Any] = {}
        self._adopted: dict[Any, _Registration] = {}  # replace(): overrides the container closes
        self._affected: dict[Any, bool] = {}
        self._lock = threading.RLock()
        self._on_missing: Callable[[Container, Any], bool] | None = None
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    # -- registration -----------------------------------------------------------------------------------

    def register(
        self,
        service_type: type[T],
        factory: Callable[..., T] | Callable[..., Awaitable[T]] | None = None,
        lifetime: Lifetime = Lifetime.SINGLETON,
    ) -> None:
        """Register how to build ``service_type`` (default: its constructor), sync or ``async def``.

        Registering a type again replaces its registration and forgets its built singleton (which is
        still closed by :meth:`close`); singletons already built from the old one keep what they got.
        """
        if factory is None:
            if inspect.isabstract(service_type) or getattr(service_type, "_is_protocol", False):
                raise _abstract_without_factory(service_type)
            factory = service_type
        elif not callable(factory):
            raise _not_callable(service_type, factory)
        if not isinstance(lifetime, Lifetime):
            raise _not_a_lifetime(lifetime)
        self._add(_Registration(service_type, factory, lifetime, _MISSING))

    def register_instance(self, service_type: type[T], instance: T) -> None:
        """Register a ready singleton; the caller keeps ownership (the container never closes it)."""
        self._add(_Registration(service_type, lambda: instance, Lifetime.SINGLETON, instance))

    def register_borrowed(self, service_type: type[T], getter: Callable[[], T]) -> None:
        """Resolve ``service_type`` by calling ``getter()`` every time; what it returns is never closed here.

        For objects owned by someone else (``get_settings()``, or the HTTP defaults handing out one
        client per event loop): nothing is built before the first resolve (unlike
        :meth:`register_instance`), each resolve follows the owner, and neither :meth:`close` nor a
        scope closes the result (unlike :meth:`register`), so its owner is the only one that closes it.
        """
        self._add(_Registration(service_type, getter, Lifetime.TRANSIENT, _MISSING, owned=False))

    def is_registered(self, service_type: type[Any]) -> bool:
        """Whether :meth:`resolve` knows ``service_type`` (asking the on-demand provider registers it)."""
        known = service_type in self._registrations or service_type in self._overrides
        return known or self._demand(service_type) is not None

    def register_on_demand(self, provider: Callable[[Container, Any], bool]) -> None:
        """Ask ``provider(container, type)`` to register a type the first time it is missing.

        It returns True when it knows the type (it registered it, or someone already has); the lookup is
        then tried once more. The default container registers each capability's services this way, so
        resolving one capability's type never imports the others.
        """
        self._on_missing = provider

    def _demand(self, service_type: Any) -> _Registration | None:
        """The registration of a type nobody registered, from the on-demand provider if it knows it."""
        provider = self._on_missing
        if provider is None:
            return None
        with self._lock:  # the lock a singleton's creation holds: one order, so no deadlock
            return self._lookup(service_type) if provider(self, service_type) else None

    def _add(self, registration: _Registration) -> None:
        with self._lock:
            service_type = registration.service_type
            self._registrations[service_type] = registration
            self._singletons.pop(service_type, None)
            if registration.instance is not _MISSING:
                self._singletons[service_type] = registration.instance
            self._affected = {}
        CHANGES.bump()

    @contextmanager
    def override(self, service_type: type[T], instance: T) -> Iterator[T]:
        """Resolve ``service_type`` to ``instance`` while active, also as a dependency (for tests).

        Overrides are container-wide and nest in any order. While one is active, singletons whose
        dependencies reach an overridden type (or that take the Container) are built into a separate
        cache that is dropped whenever the overrides change, so the real cache never keeps an override
        inside; those throwaway singletons are closed by :meth:`close`. Scoped instances already built
        in a live scope are kept: open the scope inside the override.
        """
        registration = _Registration(service_type, lambda: instance, Lifetime.SINGLETON, instance)
        self._set_overrides([*self._override_stack, registration])
        try:
            yield instance
        finally:
            self._set_overrides([r for r in self._override_stack if r is not registration])

    def peek(self, service_type: type[T]) -> T | None:
        """What :meth:`resolve` would return now if nothing has to be built for it, else None.

        Never builds: for ``set_*``-style functions that hand back the previous instance.
        """
        with self._lock:
            found = self._peek(service_type)
        return None if found is _MISSING else found

    def _peek(self, service_type: Any) -> Any:
        registration = self._overrides.get(service_type)
        if registration is not None:
            return registration.instance
        if self._overrides and service_type in self._override_singletons:
            return self._override_singletons[service_type]
        return self._singletons.get(service_type, _MISSING)

    def replace(self, service_type: type[T], instance: T | None) -> T | None:
        """Resolve ``service_type`` to ``instance`` from now on (``None``: back to its registration).

        The imperative twin of :meth:`override`, behind the ``set_*`` functions (``set_cache()``): the
        container adopts ``instance`` (:meth:`close` and :meth:`reset` close it) and hands the previous
        instance, if one was built or adopted, back to the caller, who owns it from then on.
        """
        with self._lock:
            previous = self._peek(service_type)
            self._forget(service_type, previous)
            stack = self._without_adopted(service_type)
            if instance is not None:
                registration = _Registration(service_type, lambda: instance, Lifetime.SINGLETON, instance)
                self._adopted[service_type] = registration
                self._track(instance)
                stack.append(registration)
            self._set_overrides(stack)
        return None if previous is _MISSING else previous

    def reset(self, *service_types: type[Any]) -> None:
        """Close and forget the instances of ``service_types`` that the container built or adopted.

        The next resolve builds each from its registration again. Instances given to
        :meth:`register_instance` or to an active :meth:`override` stay: they are the caller's.
        """
        closing: list[Any] = []
        with self._lock:
            for service_type in service_types:
                current = self._peek(service_type)
                if self._forget(service_type, current):
                    closing.append(current)
                if service_type in self._adopted:
                    self._set_overrides(self._without_adopted(service_type))
        CHANGES.bump()
        _raise_first(_close_sync(closing))

    def _forget(self, service_type: Any, instance: Any) -> bool:
        """Drop a built ``instance`` from the caches and the closables; True when the container owned it."""
        if instance is _MISSING:
            return False
        registration = self._registrations.get(service_type)
        for cache in (self._singletons, self._override_singletons):
            if cache.get(service_type, _MISSING) is instance and (
                registration is None or registration.instance is not instance
            ):
                del cache[service_type]
        for index, closable in enumerate(self._closables):
            if closable is instance:
                del self._closables[index]
                return True
        return False

    def _without_adopted(self, service_type: Any) -> list[_Registration]:
        adopted = self._adopted.pop(service_type, None)
        return [r for r in self._override_stack if r is not adopted]

    def _set_overrides(self, stack: list[_Registration]) -> None:
        with self._lock:
            self._override_stack = stack
            self._overrides = {r.service_type: r for r in stack}
            self._override_singletons = {}
            self._affected = {}
        CHANGES.bump()

    # -- resolution -------------------------------------------------------------------------------------

    def resolve(self, service_type: type[T]) -> T:
        """Return an instance of ``service_type``, building it and its dependencies as registered."""
        instance: T = self._singletons.get(service_type, _MISSING)
        if instance is _MISSING or self._overrides:
            scope = _SCOPE.get()
            if scope is not None and scope._container is not self:
                scope = self._current_scope()
            reg = self._lookup(service_type) if self._overrides else self._registrations.get(service_type)
            instance = self._get(
                reg or self._demand(service_type) or _not_registered(service_type), scope, ()
            )
        return instance

    def try_resolve(self, service_type: type[T]) -> T | None:
        """Like :meth:`resolve`, but never waits: None while another thread is building a singleton here.

        For code that runs under a lock of its own (a log handler's): a thread building a singleton holds
        this container's lock and may log, so waiting for it there would deadlock both.
        """
        instance: T = self._singletons.get(service_type, _MISSING)
        if instance is not _MISSING and not self._overrides:
            return instance
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self.resolve(service_type)
        finally:
            self._lock.release()

    async def aresolve(self, service_type: type[T]) -> T:
        """Like :meth:`resolve`, and awaits ``async def`` factories (sync ones are called as usual)."""
        instance: T = self._singletons.get(service_type, _MISSING)
        if instance is _MISSING or self._overrides:
            instance = await self._aresolve(service_type, self._current_scope())
        return instance

    def scope(self, name: str = "scope") -> Scope:
        """A new scope: ``with container.scope() as scope:`` (or ``async with``) around a request.

        ``name`` says which unit of work it is (``"GET /orders"``, ``"job resize"``) where per-unit
        findings are reported, such as the database's N+1 incidents.
        """
        return Scope(self, name)

    def _current_scope(self) -> Scope | None:
        scope = _SCOPE.get()
        while scope is not None and scope._container is not self:
            scope = scope._parent
        return scope

    def _lookup(self, service_type: Any) -> _Registration | None:
        if self._overrides:
            registration = self._overrides.get(service_type)
            if registration is not None:
                return registration
        return self._registrations.get(service_type)

    async def _aresolve(self, service_type: Any, scope: Scope | None) -> Any:
        reg = self._lookup(service_type) or self._demand(service_type) or _not_registered(service_type)
        return await self._aget(reg, scope, ())

    def _get(self, reg: _Registration, scope: Scope | None, chain: tuple[_Registration, ...]) -> Any:
        if reg.instance is not _MISSING:
            return reg.instance
        if reg.lifetime is _TRANSIENT:
            instance = self._create(reg, scope, chain)
            if scope is not None and reg.owned:
                scope._track(instance)
            return instance
        owner: Container | Scope
        if reg.lifetime is _SINGLETON and not self._overrides:
            cache, owner, scope = self._singletons, self, None
        else:
            cache, owner, scope = self._home(reg, scope, chain)
        instance = cache.get(reg.service_type, _MISSING)
        if instance is _MISSING:
            with owner._lock:
                instance = cache.get(reg.service_type, _MISSING)
                if instance is _MISSING:
                    instance = self._create(reg, scope, chain)
                    if reg.owned:  # tracked before setdefault: an aresolve() in another thread may have won
                        owner._track(instance)
                    instance = cache.setdefault(reg.service_type, instance)
        return instance

    async def _aget(self, reg: _Registration, scope: Scope | None, chain: tuple[_Registration, ...]) -> Any:
        if reg.instance is not _MISSING:
            return reg.instance
        if reg.lifetime is _TRANSIENT:
            instance = await self._acreate(reg, scope, chain)
            if scope is not None and reg.owned:
                scope._track(instance)
            return instance
        cache, owner, scope = self._home(reg, scope, chain)
        instance = cache.get(reg.service_type, _MISSING)
        if instance is _MISSING:
            async with _hold(owner._async_lock()):
                instance = cache.get(reg.service_type, _MISSING)
                if instance is _MISSING:
                    instance = await self._acreate(reg, scope, chain)
                    if reg.owned:  # a sync resolve in another thread may have won meanwhile:
                        owner._track(instance)  # keep one, close both
                    instance = cache.setdefault(reg.service_type, instance)
        return instance

    def _home(
        self, reg: _Registration, scope: Scope | None, chain: tuple[_Registration, ...]
    ) -> tuple[dict[Any, Any], Container | Scope, Scope | None]:
        """Where a SINGLETON or SCOPED instance is cached, who closes it, and the scope to build it in."""
        if reg.lifetime is _SINGLETON:
            if self._overrides and self._reaches_override(reg.service_type, set()):
                return self._override_singletons, self, None
            return self._singletons, self, None
        if scope is None or scope._closed or chain:  # errors, and the captive-dependency check
            scope = self._scope_for(reg, scope, chain)
        return scope._instances, scope, scope

    def _create(self, reg: _Registration, scope: Scope | None, chain: tuple[_Registration, ...]) -> Any:
        plan = reg.plan if reg.plan is not None else self._plan(reg)
        if reg.is_async:
            raise _async_error(reg, chain)
        if not plan:
            return reg.factory()
        if reg in chain:
            raise _cycle(chain, reg)
        chain = (*chain, reg)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, dependency_type, kind, default, positional in plan:  # hot: no helper calls on success
            if kind == _CONTAINER:
                value: Any = self
            else:
                dependency = (
                    self._lookup(dependency_type)
                    if self._overrides
                    else self._registrations.get(dependency_type)
                )
                if dependency is None and self._on_missing is not None:
                    dependency = self._demand(dependency_type)
                if dependency is not None:
                    value = self._get(dependency, scope, chain)
                elif kind == _FALLBACK:
                    value = default
                else:
                    raise _not_injectable(name, dependency_type, chain)
            if positional:
                args.append(value)
            else:
                kwargs[name] = value
        return reg.factory(*args, **kwargs)

    async def _acreate(
        self, reg: _Registration, scope: Scope | None, chain: tuple[_Registration, ...]
    ) -> Any:
        plan = reg.plan if reg.plan is not None else self._plan(reg)
        if plan and reg in chain:
            raise _cycle(chain, reg)
        chain = (*chain, reg)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, dependency_type, kind, default, positional in plan:
            if kind == _CONTAINER:
                value: Any = self
            else:
                dependency = self._lookup(dependency_type) or self._demand(dependency_type)
                if dependency is not None:
                    value = await self._aget(dependency, scope, chain)
                elif kind == _FALLBACK:
                    value = default
                else:
                    raise _not_injectable(name, dependency_type, chain)
            if positional:
                args.append(value)
            else:
                kwargs[name] = value
        instance = reg.factory(*args, **kwargs)
        return await instance if reg.is_async else instance

    def _scope_for(self, reg: _Registration, scope: Scope | None, chain: tuple[_Registration, ...]) -> Scope:
        for index, owner in enumerate(chain):
            if owner.lifetime is _SINGLETON:
                raise _captive(owner, reg, chain[index:])
        if scope is None:
            raise _scope_required(reg, chain)
        if scope._closed:
            raise _scope_closed(reg)
        return scope

    # -- singletons, overrides, locks ---------------------------------------------------------------------

    def _track(self, instance: Any) -> None:
        if hasattr(instance, "close") or hasattr(instance, "aclose"):
            self._closables.append(instance)

    def _reaches_override(self, service_type: Any, seen: set[Any]) -> bool:
        """Whether building ``service_type`` may use an override; memoised until registrations change."""
        known = self._affected.get(service_type)
        if known is not None:
            return known
        reg = self._lookup(service_type)
        if reg is None or service_type in seen:
            return False
        seen.add(service_type)
        reaches = service_type in self._overrides or (
            reg.instance is _MISSING
            and any(
                kind == _CONTAINER or self._reaches_override(dependency, seen)
                for _, dependency, kind, _, _ in (reg.plan if reg.plan is not None else self._plan(reg))
            )
        )
        self._affected[service_type] = reaches
        return reaches

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()  # asyncio locks belong to one loop: keep one per loop
        lock = self._async_locks.get(loop)
        if lock is None:
            with self._lock:
                lock = self._async_locks.setdefault(loop, asyncio.Lock())
        return lock

    # -- wiring plans -----------------------------------------------------------------------------------

    def _plan(self, reg: _Registration) -> _Plan:
        """Read the factory's signature and hints once (see ``_wiring``); cached on the registration."""
        return _build_plan(reg, self._registrations, Container)

    # -- closing ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close built singletons (``close()``) in reverse creation order and forget them.

        The container stays usable (it builds fresh singletons). Instances given to ``register_instance``
        are the caller's, and so is what a borrowed getter returns (see ``get_container``). Singletons
        with only ``aclose()`` raise a ContainerError: use :meth:`aclose`.
        """
        _raise_first(_close_sync(self._take_closables()))

    async def aclose(self) -> None:
        """Close built singletons (``aclose()`` or ``close()``, awaited if needed) in reverse order."""
        _raise_first(await _close_async(self._take_closables()))

    def _take_closables(self) -> list[Any]:
        with self._lock:
            closables, self._closables = _unique(self._closables), []
            if self._adopted:  # closed below: resolving must not hand them out again
                adopted, self._adopted = set(self._adopted.values()), {}
                self._set_overrides([r for r in self._override_stack if r not in adopted])
            self._singletons = {
                t: r.instance for t, r in self._registrations.items() if r.instance is not _MISSING
            }
            self._override_singletons = {}
        CHANGES.bump()
        return closables

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _unique(objects: list[Any]) -> list[Any]:
    """``objects`` without repeats (kept at first creation), so nothing is closed twice."""
    seen: set[int] = set()
    kept: list[Any] = []
    for obj in objects:
        if id(obj) not in seen:
            seen.add(id(obj))
            kept.append(obj)
    return kept
