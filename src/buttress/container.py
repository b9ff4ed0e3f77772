"""Dependency injection: register how to build each service type, resolve it auto-wired from type hints.

Services (HTTP clients, caches, engines) are built once, shared, closed in reverse order at shutdown and
swapped in tests; request-bound objects live in a scope. The wiring plan of a factory is read from its
signature once and cached, so resolving is a few dict lookups.

Closing (scopes, :meth:`Container.close`) continues past a failing ``close()``; afterwards the *first*
failure is re-raised and every later one is attached to it as a note (``add_note``), so ``except
ContainerError`` and friends keep working and nothing is hidden.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import threading
import types
import typing
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar, Token
from typing import Any, NoReturn, Self, TypeVar

from buttress.errors import (
    ContainerError,
    DependencyCycle,
    ScopeRequired,
    ServiceNotRegistered,
    ValidationError,
)

__all__ = ["Container", "Lifetime", "Scope", "get_container", "reset_container", "set_container"]

T = TypeVar("T")
_MISSING: Any = object()
_NO_TYPE: Any = object()  # the "type" of an unannotated parameter with a default: never registered
_SCOPE: ContextVar[Scope | None] = ContextVar("buttress_scope", default=None)
_HELD: ContextVar[frozenset[int]] = ContextVar("buttress_container_locks", default=frozenset())


class Lifetime(enum.Enum):
    """How long a resolved instance lives."""

    SINGLETON = "singleton"  # one per container, closed by Container.close()
    TRANSIENT = "transient"  # a new one per resolve; closed with the current scope, else the caller's
    SCOPED = "scoped"  # one per scope, closed when the scope exits


# Module constants, not enum attribute lookups: those are slow on Python 3.11 and this is the hot path.
_SINGLETON, _TRANSIENT = Lifetime.SINGLETON, Lifetime.TRANSIENT
_REQUIRED, _FALLBACK, _CONTAINER = 1, 2, 3  # inject | inject if registered else the default | the container
_Plan = tuple[tuple[str, Any, int, Any, bool], ...]  # per parameter: name, type, kind, default, positional


class _Registration:
    __slots__ = ("factory", "instance", "is_async", "lifetime", "plan", "service_type")

    def __init__(
        self, service_type: Any, factory: Callable[..., Any], lifetime: Lifetime, instance: Any
    ) -> None:
        self.service_type = service_type
        self.factory = factory
        self.lifetime = lifetime
        self.instance = instance  # set for register_instance() and overrides: never built
        call = None if isinstance(factory, type) else type(factory).__call__  # async callable objects too
        self.is_async = inspect.iscoroutinefunction(factory) or inspect.iscoroutinefunction(call)
        self.plan: _Plan | None = None


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
        self._affected: dict[Any, bool] = {}
        self._lock = threading.RLock()
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
        name = _name(service_type)
        if factory is None:
            if inspect.isabstract(service_type) or getattr(service_type, "_is_protocol", False):
                raise ValidationError(
                    f"{name} is abstract and cannot be built by its constructor; pass a factory: "
                    f"container.register({name}, make_{name.lower()})",
                    field="factory",
                )
            factory = service_type
        elif not callable(factory):
            raise ValidationError(
                f"factory must be callable (a class or a function returning {name}), got "
                f"{type(factory).__name__} {factory!r}; use register_instance() for a ready object",
                field="factory",
            )
        if not isinstance(lifetime, Lifetime):
            raise ValidationError(
                f"lifetime must be a Lifetime, got {lifetime!r}; pass Lifetime.SINGLETON, Lifetime.TRANSIENT "
                f"or Lifetime.SCOPED",
                field="lifetime",
            )
        self._add(_Registration(service_type, factory, lifetime, _MISSING))

    def register_instance(self, service_type: type[T], instance: T) -> None:
        """Register a ready singleton; the caller keeps ownership (the container never closes it)."""
        self._add(_Registration(service_type, lambda: instance, Lifetime.SINGLETON, instance))

    def is_registered(self, service_type: type[Any]) -> bool:
        return service_type in self._registrations or service_type in self._overrides

    def _add(self, registration: _Registration) -> None:
        with self._lock:
            service_type = registration.service_type
            self._registrations[service_type] = registration
            self._singletons.pop(service_type, None)
            if registration.instance is not _MISSING:
                self._singletons[service_type] = registration.instance
            self._affected = {}

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

    def _set_overrides(self, stack: list[_Registration]) -> None:
        with self._lock:
            self._override_stack = stack
            self._overrides = {r.service_type: r for r in stack}
            self._override_singletons = {}
            self._affected = {}

    # -- resolution -------------------------------------------------------------------------------------

    def resolve(self, service_type: type[T]) -> T:
        """Return an instance of ``service_type``, building it and its dependencies as registered."""
        instance: T = self._singletons.get(service_type, _MISSING)
        if instance is _MISSING or self._overrides:
            scope = _SCOPE.get()
            if scope is not None and scope._container is not self:
                scope = self._current_scope()
            reg = self._lookup(service_type) if self._overrides else self._registrations.get(service_type)
            instance = self._get(reg or _not_registered(service_type), scope, ())
        return instance

    async def aresolve(self, service_type: type[T]) -> T:
        """Like :meth:`resolve`, and awaits ``async def`` factories (sync ones are called as usual)."""
        instance: T = self._singletons.get(service_type, _MISSING)
        if instance is _MISSING or self._overrides:
            instance = await self._aresolve(service_type, self._current_scope())
        return instance

    def scope(self) -> Scope:
        """A new scope: ``with container.scope() as scope:`` (or ``async with``) around a request."""
        return Scope(self)

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
        return await self._aget(self._lookup(service_type) or _not_registered(service_type), scope, ())

    def _get(self, reg: _Registration, scope: Scope | None, chain: tuple[_Registration, ...]) -> Any:
        if reg.instance is not _MISSING:
            return reg.instance
        if reg.lifetime is _TRANSIENT:
            instance = self._create(reg, scope, chain)
            if scope is not None:
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
                    owner._track(instance)  # setdefault: an aresolve() in another thread may have won
                    instance = cache.setdefault(reg.service_type, instance)
        return instance

    async def _aget(self, reg: _Registration, scope: Scope | None, chain: tuple[_Registration, ...]) -> Any:
        if reg.instance is not _MISSING:
            return reg.instance
        if reg.lifetime is _TRANSIENT:
            instance = await self._acreate(reg, scope, chain)
            if scope is not None:
                scope._track(instance)
            return instance
        cache, owner, scope = self._home(reg, scope, chain)
        instance = cache.get(reg.service_type, _MISSING)
        if instance is _MISSING:
            async with _hold(owner._async_lock()):
                instance = cache.get(reg.service_type, _MISSING)
                if instance is _MISSING:
                    instance = await self._acreate(reg, scope, chain)
                    owner._track(instance)  # a sync resolve in another thread may have won meanwhile:
                    instance = cache.setdefault(reg.service_type, instance)  # keep one, close both
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
                dependency = self._lookup(dependency_type)
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
        name = _name(reg.service_type)
        for index, owner in enumerate(chain):
            if owner.lifetime is _SINGLETON:
                path, owner_name = _names((*chain[index:], reg)), _name(owner.service_type)
                raise ContainerError(
                    f"captive dependency: {owner_name} is a SINGLETON but depends on {name}, which is SCOPED "
                    f"({' -> '.join(path)}); the singleton would keep one scope's {name} forever. Make "
                    f"{owner_name} SCOPED or TRANSIENT, or inject the Container and resolve {name} per call",
                    error_code="captive_dependency",
                    context={"service": owner_name, "scoped": name, "path": path},
                )
        if scope is None:
            raise ScopeRequired(
                f"{name} is SCOPED and was resolved outside a scope; resolve it inside "
                f"`with container.scope():` (or `async with container.scope():`)"
                + _path_suffix((*chain, reg)),
                context={"service": name},
            )
        if scope._closed:
            raise ContainerError(
                f"cannot resolve {name}: its scope is already closed", context={"service": name}
            )
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
        """Read the factory's signature and hints once; resolving then only walks this tuple."""
        factory = reg.factory
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):  # some builtins have no signature: call them without arguments
            reg.plan = ()
            return ()
        hints = self._hints(reg)
        params: list[tuple[str, Any, int, Any, bool]] = []
        for p in signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            hint = hints.get(p.name, p.annotation)
            has_default = p.default is not p.empty
            if hint is p.empty or isinstance(hint, str):  # no hint, or a string nothing could evaluate
                if not has_default:
                    raise _not_annotated(reg, p.name, hint)
                hint = _NO_TYPE
            dependency, optional = _unwrap_optional(hint)
            if isinstance(dependency, type) and issubclass(dependency, Container):
                kind = _CONTAINER
            elif has_default or optional:
                kind = _FALLBACK
            else:
                kind = _REQUIRED
            default = p.default if has_default else None
            params.append((p.name, dependency, kind, default, p.kind is p.POSITIONAL_ONLY))
        reg.plan = tuple(params)
        return reg.plan

    def _hints(self, reg: _Registration) -> dict[str, Any]:
        factory = _unwrap(reg.factory)
        target: Any = factory.__init__ if isinstance(factory, type) else factory  # type: ignore[misc]
        if not isinstance(factory, type) and not inspect.isroutine(factory):
            target = type(factory).__call__
        try:
            return typing.get_type_hints(target)
        except NameError:
            # String annotations naming classes the module cannot see (defined in a function): try the
            # names of registered types, without shadowing the module's own, one parameter at a time so
            # a name nobody can see only matters when its parameter has no default.
            module = getattr(target, "__globals__", {})
            local = {_name(t): t for t in list(self._registrations) if _name(t) not in module}
            local.setdefault("Container", Container)
            hints: dict[str, Any] = {}
            for name, annotation in getattr(target, "__annotations__", {}).items():
                holder = types.SimpleNamespace(__annotations__={name: annotation}, __globals__=module)
                try:
                    hints.update(typing.get_type_hints(holder, localns=local))
                except NameError:
                    hints[name] = annotation
            return hints
        except TypeError:  # pragma: no cover - defensive: a callable get_type_hints cannot read
            return {}

    # -- closing ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close built singletons (``close()``) in reverse creation order and forget them.

        The container stays usable (it builds fresh singletons). Instances given to ``register_instance``
        are the caller's. Singletons with only ``aclose()`` raise a ContainerError: use :meth:`aclose`.
        """
        _raise_first(_close_sync(self._take_closables()))

    async def aclose(self) -> None:
        """Close built singletons (``aclose()`` or ``close()``, awaited if needed) in reverse order."""
        _raise_first(await _close_async(self._take_closables()))

    def _take_closables(self) -> list[Any]:
        with self._lock:
            closables, self._closables = self._closables, []
            self._singletons = {
                t: r.instance for t, r in self._registrations.items() if r.instance is not _MISSING
            }
            self._override_singletons = {}
        return closables

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class Scope:
    """One unit of work (a request, a job): SCOPED instances live here and close when it exits.

    Entering makes it the current scope of its container (a ContextVar), so ``container.resolve()`` deep
    in the call stack finds it. Transients created while it is current and having ``close()``/``aclose()``
    are closed with it too; nested scopes are independent.
    """

    __slots__ = ("_alock", "_closables", "_closed", "_container", "_instances", "_lock", "_parent", "_token")

    def __init__(self, container: Container) -> None:
        self._container = container
        self._instances: dict[Any, Any] = {}
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
            instance = container._get(reg or _not_registered(service_type), self, ())
        return instance

    async def aresolve(self, service_type: type[T]) -> T:
        instance: T = await self._container._aresolve(service_type, self)
        return instance

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


# -- helpers ------------------------------------------------------------------------------------------------


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


def _needs_async_close(obj: Any) -> ContainerError:
    name = type(obj).__name__
    return ContainerError(
        f"{name} can only be closed asynchronously (aclose() or an async close()); exit the scope with "
        f"`async with container.scope():` or close the container with `await container.aclose()`",
        error_code="async_close_required",
        context={"service": name},
    )


def _raise_first(errors: list[Exception]) -> None:
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"also failed while closing: {type(other).__name__}: {other}")
        raise first


def _not_registered(service_type: Any) -> NoReturn:
    name = _name(service_type)
    raise ServiceNotRegistered(
        f"{name} is not registered; register it with container.register({name}, ...)",
        context={"service": name},
    )


def _async_error(reg: _Registration, chain: tuple[_Registration, ...]) -> ContainerError:
    name, root = _name(reg.service_type), _name((chain[0] if chain else reg).service_type)
    return ContainerError(
        f"cannot build {name} synchronously: its factory {_factory_name(reg.factory)}() is async; use "
        f"`await container.aresolve({root})`" + _path_suffix((*chain, reg)),
        error_code="async_factory",
        context={"service": name, "path": _names((*chain, reg))},
    )


def _not_annotated(reg: _Registration, parameter: str, hint: Any) -> ContainerError:
    service, factory = _name(reg.service_type), _factory_name(reg.factory)
    if isinstance(hint, str):
        problem = f"has the type hint {hint!r}, which cannot be evaluated,"
        fix = f"import that type where {factory} is defined (or register it)"
    else:
        problem, fix = "has no type hint", f"annotate it with the type to inject ({parameter}: SomeService)"
    return ContainerError(
        f"cannot build {service}: parameter '{parameter}' of {factory}() {problem} and no default; {fix} "
        f"or give it a default",
        error_code="parameter_not_injectable",
        context={"service": service, "parameter": parameter, "factory": factory},
    )


def _cycle(chain: tuple[_Registration, ...], reg: _Registration) -> DependencyCycle:
    members = _names((*chain[chain.index(reg) :], reg))
    return DependencyCycle(
        f"dependency cycle: {' -> '.join(members)}; break it by injecting the Container into one of "
        f"them and resolving the other lazily",
        context={"cycle": members},
    )


def _not_injectable(parameter: str, needed: Any, chain: tuple[_Registration, ...]) -> ServiceNotRegistered:
    owner = chain[-1]
    service, needs, factory = _name(owner.service_type), _name(needed), _factory_name(owner.factory)
    return ServiceNotRegistered(
        f"cannot build {service}: parameter '{parameter}' of {factory}() needs {needs}, which is not "
        f"registered; register it with container.register({needs}, ...) or give the parameter a default"
        + _path_suffix(chain),
        context={"service": service, "parameter": parameter, "factory": factory, "needs": needs},
    )


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if len(args) == 2 and type(None) in args:
            return (args[1] if args[0] is type(None) else args[0]), True
    return hint, False


def _name(obj: Any) -> str:
    return obj.__name__ if isinstance(obj, type) else repr(obj)


def _names(chain: tuple[_Registration, ...]) -> list[str]:
    return [_name(r.service_type) for r in chain]


def _path_suffix(chain: tuple[_Registration, ...]) -> str:
    return f" (resolving {' -> '.join(_names(chain))})" if len(chain) > 1 else ""


def _unwrap(factory: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(factory, functools.partial):
        factory = factory.func
    return factory


def _factory_name(factory: Callable[..., Any]) -> str:
    factory = _unwrap(factory)
    return getattr(factory, "__name__", None) or type(factory).__name__


# -- the process-wide default -----------------------------------------------------------------------------


_DEFAULT: list[Container] = []  # zero or one: the process-wide default container
_DEFAULT_LOCK = threading.Lock()


def get_container() -> Container:
    """The process-wide default container, created on first use (thread-safe). Nothing is registered."""
    if not _DEFAULT:
        with _DEFAULT_LOCK:
            if not _DEFAULT:
                _DEFAULT.append(Container())
    return _DEFAULT[0]


def set_container(container: Container) -> None:
    """Replace the default container (tests, or an application that builds its own)."""
    _DEFAULT[:] = [container]


def reset_container() -> None:
    """Forget the default container (it is not closed); the next get_container() creates a new one."""
    _DEFAULT.clear()
