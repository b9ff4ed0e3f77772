"""Checks that import code: run by ``buttress config --check`` (:func:`check_settings`), not at every load.

Exception classes named in the settings (``RETRY__ON``) are imported when their pipeline is first built;
a name that does not import would fail then, possibly long after start. Loading the settings stays free
of imports of the application's modules; the check, which is asked for, imports them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["exception_import_problem", "importing_names", "names_are_imported"]

_IMPORTING: ContextVar[bool] = ContextVar("buttress_config_importing", default=False)


@contextmanager
def importing_names() -> Iterator[None]:
    """Within the block, validating a setting that names an exception class imports it."""
    token = _IMPORTING.set(True)
    try:
        yield
    finally:
        _IMPORTING.reset(token)


def names_are_imported() -> bool:
    return _IMPORTING.get()


def exception_import_problem(path: str) -> str | None:
    """Why ``module.Class`` does not name an importable exception class, or None when it does."""
    module_name, _, attribute = path.rpartition(".")
    try:
        candidate = getattr(importlib.import_module(module_name), attribute)
    except ImportError as exc:
        return f"an exception class that imports here (module.Class): {exc}"
    except AttributeError:
        return f"an exception class that imports here (module.Class): {module_name} has no {attribute}"
    if isinstance(candidate, type) and issubclass(candidate, BaseException):
        return None
    return f"an exception class (module.Class): {path} is not one"
