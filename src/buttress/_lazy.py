"""Lazy package exports (PEP 562): a name's module is imported the first time the name is read.

A package ``__init__`` lists its public names and the module each comes from; ``import buttress`` then
costs one small file instead of pydantic, structlog and the rest, and each name still resolves as
``buttress.Settings`` or ``from buttress import Settings``. The ``TYPE_CHECKING`` block beside the table
keeps the names visible to mypy and IDEs.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # typing itself is not imported: it would cost more than this whole module
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, which exports ``exports`` (name -> module)."""

    def get(name: str) -> Any:
        try:
            source = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(source), name)
        # Stored on the package, so the next read is a plain attribute lookup that skips this function.
        setattr(sys.modules[package], name, value)
        return value

    def names() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return get, names
