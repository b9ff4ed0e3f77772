"""Creating buttress's tables on first use, once per process, without loading alembic when they exist.

Each capability with tables (jobs, files) holds a :class:`SchemaGate` for the revision that made them.
The first call reads buttress's version table once: when it holds that revision or a later one there is
nothing to do (a worker starts without importing alembic); otherwise it runs the upgrade, which takes its
own cross-process lock. Later calls return at once.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Final

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from buttress.db._migration_status import VERSION_TABLE
from buttress.db._options import internal_options

if TYPE_CHECKING:
    from buttress.db._database import Database

__all__ = ["SchemaGate"]

_VERSIONS: Final = text("SELECT version_num FROM " + VERSION_TABLE)  # noqa: S608 - a constant name


class SchemaGate:
    """Upgrades ``db`` the first time :meth:`ensure` runs unless it already holds ``revision``.

    ``auto_migrate=False``: the gate is open from the start (the operator runs ``buttress db upgrade``).
    """

    def __init__(self, db: Database, revision: str, *, auto_migrate: bool = True) -> None:
        self.db = db
        self.revision = revision
        self.ready = not auto_migrate
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Make sure the tables of ``revision`` exist (see the module docstring)."""
        if self.ready:
            return
        with self._lock:
            if not self.ready:
                if not self.current():
                    self.db.upgrade()
                self.ready = True

    async def aensure(self) -> None:
        """Async :meth:`ensure` (the one read, or the upgrade, in a worker thread)."""
        if not self.ready:
            await asyncio.to_thread(self.ensure)

    def current(self) -> bool:
        """Whether the version table holds ``revision`` or a later one (False when there is none)."""
        try:
            with self.db.engine.execution_options(**internal_options()).connect() as connection:
                versions = connection.execute(_VERSIONS).scalars().all()
        except DBAPIError:
            return False  # no version table yet: the upgrade creates it
        return any(version.isdigit() and version >= self.revision for version in versions)
