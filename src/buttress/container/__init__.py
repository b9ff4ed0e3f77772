"""Dependency injection: register how to build each service type, resolve it auto-wired from type hints.

Services (HTTP clients, caches, engines) are built once, shared, closed in reverse order at shutdown and
swapped in tests; request-bound objects live in a scope. The wiring plan of a factory is read from its
signature once and cached, so resolving is a few dict lookups.

Closing (scopes, :meth:`Container.close`) continues past a failing ``close()``; afterwards the *first*
failure is re-raised and every later one is attached to it as a note (``add_note``), so ``except
ContainerError`` and friends keep working and nothing is hidden.

The process-wide container (:func:`get_container`) is where process-wide state lives: it starts with
buttress's services registered by the composition root (:mod:`buttress.composition`), owns and closes
what it builds, and :func:`reset_container` is the one reset for tests (see its docstring for the list).

Layout: ``_core`` (Container: registrations, resolution, overrides), ``_scope`` (Scope, closing),
``_wiring`` (registrations and the plans read from factory signatures), ``_errors`` (messages),
``_default`` (the process-wide container).
"""

import inspect  # noqa: F401 - kept as an attribute: tests patch buttress.container.inspect.signature

from buttress.container._core import CHANGES, Changes, Container
from buttress.container._default import get_container, reset_container, set_container
from buttress.container._scope import Scope, current_scope
from buttress.container._wiring import Lifetime

__all__ = [
    "CHANGES",
    "Changes",
    "Container",
    "Lifetime",
    "Scope",
    "current_scope",
    "get_container",
    "reset_container",
    "set_container",
]
