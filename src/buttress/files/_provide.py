"""The files' container registration and health check (gathered by :mod:`buttress.composition`).

No ``from __future__ import annotations``: the container reads the factory's annotations as real classes.
"""

from typing import TYPE_CHECKING

from buttress.clock import Clock
from buttress.health_types import CheckResult

if TYPE_CHECKING:
    from buttress.config import Settings
    from buttress.container import Container
    from buttress.files._store import FileStore
    from buttress.observe.health import HealthCheck

__all__ = ["get_files", "health_checks", "register_services"]

_NEARLY_FULL = 0.9


def register_services(container: "Container") -> None:
    """``FileStore``: one per container, on the container's database, clock and settings."""
    from buttress.config import Settings  # noqa: PLC0415 - the factory's annotations
    from buttress.db import Database  # noqa: PLC0415 - the factory's annotations
    from buttress.files._store import FileStore  # noqa: PLC0415 - only once files are asked for

    def default_files(settings: Settings, db: Database, clock: Clock) -> FileStore:
        return FileStore(db=db, settings=settings.files, clock=clock)

    container.register(FileStore, default_files)


def get_files() -> "FileStore":
    """The process's :class:`FileStore` (from the container)."""
    from buttress.container import get_container  # noqa: PLC0415 - resolved on use
    from buttress.files._store import FileStore  # noqa: PLC0415 - as above

    return get_container().resolve(FileStore)


def health_checks(container: "Container", settings: "Settings") -> "list[HealthCheck]":
    """``files``: the blob store takes writes, the catalog answers, the quota is not nearly spent."""
    from buttress.files._store import FileStore  # noqa: PLC0415 - only when health is built
    from buttress.observe.health import HealthCheck  # noqa: PLC0415 - only the composition root calls this

    def files_check() -> CheckResult:
        store = container.resolve(FileStore)
        blobs = store.blobs.check()
        if blobs.status != "pass":
            return blobs
        whole = store.usage()
        if whole.quota is None:
            return CheckResult("pass", f"{whole.files} files, {whole.used} bytes", observed_value=whole.used)
        share = (whole.used + whole.reserved) / whole.quota
        said = f"{share:.0%} of the {whole.quota} byte quota used"
        if share >= _NEARLY_FULL:
            return CheckResult("warn", said + ": clean up or raise the quota", observed_value=round(share, 4))
        return CheckResult("pass", said, observed_value=round(share, 4))

    return [HealthCheck("files", files_check, critical=False)]
