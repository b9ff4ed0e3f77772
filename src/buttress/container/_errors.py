"""The container's error messages: each names the service, the problem and the fix."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from buttress.errors import (
    ContainerError,
    DependencyCycle,
    ScopeRequired,
    ServiceNotRegistered,
    ValidationError,
)

if TYPE_CHECKING:
    from buttress.container._wiring import _Registration


def _abstract_without_factory(service_type: Any) -> ValidationError:
    name = _name(service_type)
    return ValidationError(
        f"{name} is abstract and cannot be built by its constructor; pass a factory: "
        f"container.register({name}, make_{name.lower()})",
        field="factory",
    )


def _not_callable(service_type: Any, factory: Any) -> ValidationError:
    return ValidationError(
        f"factory must be callable (a class or a function returning {_name(service_type)}), got "
        f"{type(factory).__name__} {factory!r}; use register_instance() for a ready object",
        field="factory",
    )


def _not_a_lifetime(lifetime: Any) -> ValidationError:
    return ValidationError(
        f"lifetime must be a Lifetime, got {lifetime!r}; pass Lifetime.SINGLETON, Lifetime.TRANSIENT "
        f"or Lifetime.SCOPED",
        field="lifetime",
    )


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


def _captive(owner: _Registration, reg: _Registration, path: tuple[_Registration, ...]) -> ContainerError:
    name, owner_name, names = _name(reg.service_type), _name(owner.service_type), _names((*path, reg))
    return ContainerError(
        f"captive dependency: {owner_name} is a SINGLETON but depends on {name}, which is SCOPED "
        f"({' -> '.join(names)}); the singleton would keep one scope's {name} forever. Make "
        f"{owner_name} SCOPED or TRANSIENT, or inject the Container and resolve {name} per call",
        error_code="captive_dependency",
        context={"service": owner_name, "scoped": name, "path": names},
    )


def _scope_required(reg: _Registration, chain: tuple[_Registration, ...]) -> ScopeRequired:
    name = _name(reg.service_type)
    return ScopeRequired(
        f"{name} is SCOPED and was resolved outside a scope; resolve it inside "
        f"`with container.scope():` (or `async with container.scope():`)" + _path_suffix((*chain, reg)),
        context={"service": name},
    )


def _scope_closed(reg: _Registration) -> ContainerError:
    name = _name(reg.service_type)
    return ContainerError(f"cannot resolve {name}: its scope is already closed", context={"service": name})


def _needs_async_close(obj: Any) -> ContainerError:
    name = type(obj).__name__
    return ContainerError(
        f"{name} can only be closed asynchronously (aclose() or an async close()); exit the scope with "
        f"`async with container.scope():` or close the container with `await container.aclose()`",
        error_code="async_close_required",
        context={"service": name},
    )


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
