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
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

__all__ = ["ExceptionPath", "exception_import_problem", "importing_names"]

_IMPORTING: ContextVar[bool] = ContextVar("buttress_config_importing", default=False)


@contextmanager
def importing_names() -> Iterator[None]:
    """Within the block, validating a setting that names an exception class imports it."""
    token = _IMPORTING.set(True)
    try:
        yield
    finally:
        _IMPORTING.reset(token)


def _exception_path(path: str) -> str:
    module, _, name = path.rpartition(".")
    if not module or not name.isidentifier():
        raise ValueError(f"{path!r} is not an import path such as builtins.ConnectionError")
    problem = exception_import_problem(path) if _IMPORTING.get() else None
    if problem is not None:
        raise PydanticCustomError("exception_import", "{problem}", {"problem": problem})
    return path


ExceptionPath = Annotated[str, AfterValidator(_exception_path)]
"""``module.Class`` of an exception: its form is always checked, its import within :func:`importing_names`."""


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
