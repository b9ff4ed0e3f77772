"""buttress's own schema: alembic revisions run under a lock, with their own version table.

Two processes that start together both call ``upgrade``: on PostgreSQL the second waits on a transaction
advisory lock, on SQLite on ``BEGIN IMMEDIATE``, then finds nothing left to do. On SQLite that wait lasts
up to ``MIGRATION_WAIT``, not the connections' few seconds of ``busy_timeout``, since another process's
upgrade can take longer. A database already at the revision asked for is not locked at all: a fleet of
processes starting together reads the version once each instead of queueing on the write lock. Each
upgrade runs in one transaction (both databases have transactional DDL), so a revision that fails leaves
nothing half-made.
The version table is ``buttress_alembic_version``: an app's own alembic and ``alembic_version`` never see
buttress's revisions, and the other way round.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

# Before alembic's first import, which logs a "setup plugin" INFO line per autogenerate plugin (seven at
# every worker start): noise for a service that never autogenerates. Only that logger is raised to
# WARNING; alembic's "Running upgrade" lines stay.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from buttress.db._engines import SQLITE_BEGIN
from buttress.db._migration_status import VERSION_TABLE, MigrationStatus
from buttress.errors import ValidationError

if TYPE_CHECKING:
    from buttress.db._database import Database

__all__ = ["aupgrade", "migration_status", "render_upgrade_sql", "upgrade"]

_HERE: Final = Path(__file__).parent / "migrations"
_LOCK_KEY: Final = 0x6275_7474_7265_7373  # "buttress": the advisory lock every upgrading process takes
MIGRATION_WAIT: Final = 300.0  # seconds an upgrade on SQLite waits for another process's upgrade to end


def _config(locations: Sequence[str | Path] = (), *, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("path_separator", "os")
    versions = [str(_HERE / "versions"), *(str(Path(p)) for p in locations)]
    config.set_main_option("version_locations", os.pathsep.join(versions))
    return config


def _scripts(config: Config) -> ScriptDirectory:
    return ScriptDirectory.from_config(config)


def _check_revision(config: Config, revision: object) -> str:
    if not isinstance(revision, str) or not revision:
        raise ValidationError(
            f"revision must be a revision id or 'head', got {revision!r}; e.g. upgrade(db, 'head')",
            field="revision",
        )
    if revision in ("head", "heads"):
        return revision
    scripts = _scripts(config)
    try:
        found = scripts.get_revision(revision)
    except CommandError:
        found = None
    if found is None:
        known = ", ".join(s.revision for s in scripts.walk_revisions())
        raise ValidationError(
            f"revision {revision!r} is not one of buttress's revisions ({known}); e.g. 'head'",
            field="revision",
        )
    return revision


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


@contextmanager
def _sqlite_waits_for_upgrades(connection: Connection) -> Iterator[None]:
    """Raise SQLite's busy timeout on this pooled connection for one upgrade, then put it back."""
    if connection.dialect.name != "sqlite":
        yield
        return
    cursor = connection.connection.cursor()  # the driver's cursor: a PRAGMA here must not autobegin
    try:
        cursor.execute("PRAGMA busy_timeout")
        (before,) = cursor.fetchall()[0]
        cursor.execute(f"PRAGMA busy_timeout = {round(MIGRATION_WAIT * 1000)}")
        try:
            yield
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {before}")
    finally:
        cursor.close()


def _run_upgrade(connection: Connection, config: Config, revision: str) -> None:
    with _sqlite_waits_for_upgrades(connection), connection.begin():
        _lock(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _reached(status: MigrationStatus, revision: str) -> bool:
    return status.up_to_date if revision in ("head", "heads") else status.current == revision


def _status(connection: Connection, config: Config) -> MigrationStatus:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    current = context.get_current_revision()
    scripts = _scripts(config)
    head = scripts.get_current_head()
    if head is None:  # pragma: no cover - the baseline revision always exists
        raise RuntimeError("buttress ships no migration revisions")
    pending = tuple(s.revision for s in reversed(list(scripts.iterate_revisions(head, current or "base"))))
    return MigrationStatus(current=current, head=head, pending=pending)


def upgrade(db: Database, revision: str = "head", *, locations: Sequence[str | Path] = ()) -> MigrationStatus:
    """Bring buttress's tables to ``revision`` (default: the newest) and say where the database stands.

    ``locations`` adds directories of further revisions chained onto buttress's own (tests use it).
    """
    config = _config(locations)
    revision = _check_revision(config, revision)
    locked = db.engine.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
    try:
        with db.engine.connect() as connection:
            before = _status(connection, config)
        if _reached(before, revision):
            return before
        with locked.connect() as connection:
            _run_upgrade(connection, config, revision)
        with db.engine.connect() as connection:
            return _status(connection, config)
    except DBAPIError as exc:
        raise db._translate(exc) from exc


async def aupgrade(
    db: Database, revision: str = "head", *, locations: Sequence[str | Path] = ()
) -> MigrationStatus:
    """Async :func:`upgrade`: the same revisions, run on the async engine's connection."""
    config = _config(locations)
    revision = _check_revision(config, revision)
    locked = db.async_engine.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
    try:
        async with db.async_engine.connect() as connection:
            before = await connection.run_sync(_status, config)
        if _reached(before, revision):
            return before
        async with locked.connect() as connection:
            await connection.run_sync(_run_upgrade, config, revision)
        async with db.async_engine.connect() as connection:
            return await connection.run_sync(_status, config)
    except DBAPIError as exc:
        raise db._translate(exc) from exc


def migration_status(db: Database, *, locations: Sequence[str | Path] = ()) -> MigrationStatus:
    """The revision ``db`` is at, buttress's head, and the revisions an upgrade would run."""
    config = _config(locations)
    try:
        with db.engine.connect() as connection:
            return _status(connection, config)
    except DBAPIError as exc:
        raise db._translate(exc) from exc


def render_upgrade_sql(dialect: str, revision: str = "head", *, locations: Sequence[str | Path] = ()) -> str:
    """The SQL an upgrade from nothing to ``revision`` runs on ``dialect``, for a DBA to review and apply."""
    if dialect not in ("postgresql", "sqlite"):
        raise ValidationError(
            f"dialect must be 'postgresql' or 'sqlite', got {dialect!r}; "
            "e.g. render_upgrade_sql('postgresql')",
            field="dialect",
        )
    output = io.StringIO()
    config = _config(locations, output=output)
    revision = _check_revision(config, revision)
    config.attributes["dialect"] = dialect
    command.upgrade(config, revision, sql=True)
    return output.getvalue()
