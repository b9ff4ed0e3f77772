"""Registrations, and the wiring plan read once from a factory's signature and type hints.

A plan is a tuple with one entry per injectable parameter; resolving walks it without calling
``inspect`` or ``typing`` again.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from buttress.container._errors import _name, _not_annotated, _unwrap

_MISSING: Any = object()
_NO_TYPE: Any = object()  # the "type" of an unannotated parameter with a default: never registered


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
    __slots__ = ("factory", "instance", "is_async", "lifetime", "owned", "plan", "service_type")

    def __init__(
        self,
        service_type: Any,
        factory: Callable[..., Any],
        lifetime: Lifetime,
        instance: Any,
        *,
        owned: bool = True,
    ) -> None:
        self.service_type = service_type
        self.factory = factory
        self.lifetime = lifetime
        self.instance = instance  # set for register_instance() and overrides: never built
        self.owned = owned  # False: what the factory returns belongs to someone else, never closed here
        call = None if isinstance(factory, type) else type(factory).__call__  # async callable objects too
        self.is_async = inspect.iscoroutinefunction(factory) or inspect.iscoroutinefunction(call)
        self.plan: _Plan | None = None


def _plan(reg: _Registration, registered: Iterable[Any], container_type: type) -> _Plan:
    """Read the factory's signature and hints once; resolving then only walks this tuple.

    ``registered`` (the container's registered types) helps evaluate string hints naming classes the
    factory's module cannot see; a parameter annotated with ``container_type`` receives the container.
    """
    factory = reg.factory
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature: call them without arguments
        reg.plan = ()
        return ()
    hints = _hints(reg, registered, container_type)
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
        if isinstance(dependency, type) and issubclass(dependency, container_type):
            kind = _CONTAINER
        elif has_default or optional:
            kind = _FALLBACK
        else:
            kind = _REQUIRED
        default = p.default if has_default else None
        params.append((p.name, dependency, kind, default, p.kind is p.POSITIONAL_ONLY))
    reg.plan = tuple(params)
    return reg.plan


def _hints(reg: _Registration, registered: Iterable[Any], container_type: type) -> dict[str, Any]:
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
        local = {_name(t): t for t in list(registered) if _name(t) not in module}
        local.setdefault("Container", container_type)
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


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if len(args) == 2 and type(None) in args:
            return (args[1] if args[0] is type(None) else args[0]), True
    return hint, False
