"""Optional dependencies: import one, or say which extra installs it.

The core install is small; Redis, the ops server, the CLI and the database helpers come with extras
(``buttress[redis]``, ``[server]``, ``[cli]``, ``[db]``, ``[all]``). Code that needs one imports it through
:func:`require`, so a missing package is a clear instruction instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


class MissingExtra(ImportError):
    """A feature needs a package that an optional extra installs."""

    def __init__(self, module: str, extra: str, feature: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{feature} needs the {module!r} package, which is not installed; "
            f"install it with: pip install 'buttress[{extra}]'",
            name=module,
        )


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module``; if it is missing, raise :class:`MissingExtra` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        root = module.partition(".")[0]
        if exc.name is not None and exc.name.partition(".")[0] == root:
            raise MissingExtra(root, extra, feature or f"this part of buttress ({module})") from None
        raise
