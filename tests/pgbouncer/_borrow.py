"""Borrow a suite's tests into a module that runs them through PgBouncer.

The borrowing module gets the suite's fixtures and those of its tests that take one of ``uses`` (the
suite's database fixtures); it then redefines those fixtures for PostgreSQL alone, through the pooler.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from _pytest.fixtures import FixtureFunctionDefinition

__all__ = ["borrow"]


def borrow(suite: ModuleType, uses: set[str], leave: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The fixtures of ``suite`` and its tests that take a fixture named in ``uses``, but those in
    ``leave`` (test name -> why it cannot hold behind a pooler)."""
    return {name: item for name, item in vars(suite).items() if _wanted(name, item, uses, leave or {})}


def _wanted(name: str, item: Any, uses: set[str], leave: Mapping[str, str]) -> bool:
    if isinstance(item, FixtureFunctionDefinition):
        return True
    if not name.startswith("test_") or name in leave or not callable(item):
        return False
    return bool(uses & set(inspect.signature(item).parameters))
