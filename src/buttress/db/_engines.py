"""Build the sync and async engines of one database URL, with the per-connection settings applied.

PostgreSQL runs on psycopg 3 (``postgresql+psycopg`` and ``postgresql+psycopg_async``) with the statement
timeout sent as a connect option, so it holds from the first statement of every connection. Behind a
transaction-pooling PgBouncer (``db.pooler``) a connection is a different server session in each
transaction: the pooler refuses the connect option and a prepared statement is gone in the next
transaction, so there psycopg prepares nothing and each transaction opens with ``SET LOCAL
statement_timeout`` (one more round trip, only on that path). SQLite runs
on sqlite3 and aiosqlite; on every new connection a ``connect`` event turns on WAL, the busy timeout and
foreign keys, and takes over transaction control from the driver (the SQLAlchemy recipe): the driver
would otherwise start a transaction only at the first write, so a read-then-write unit would read outside
it. Both get ``pool_pre_ping`` and the pool sizes of :class:`~buttress.config.DbSettings` (a SQLite
``:memory:`` database keeps SQLAlchemy's own single-connection pool).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from buttress._redaction import mask_url_password
from buttress.config import DATABASE_SCHEMES, DbSettings
from buttress.errors import ValidationError

__all__ = [
    "DEFAULT_URL",
    "SQLITE_BEGIN",
    "Urls",
    "build_async_engine",
    "build_engine",
    "close_engines",
    "resolve_urls",
]

SQLITE_BEGIN: Final = "buttress_sqlite_begin"
"""An execution option naming the statement that opens a SQLite transaction: ``BEGIN IMMEDIATE`` takes
the write lock at once, so two writers queue at the start instead of failing at their first write."""

DEFAULT_URL: Final = "sqlite:///buttress.db"
"""The embedded default when ``BUTTRESS_DATABASE_URL`` is unset: ``buttress.db`` in the working directory."""

_BACKEND_DRIVERS: Final = {
    "postgresql": ("postgresql", "postgresql+psycopg", "postgresql+psycopg_async"),
    "sqlite": ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"),
}
# drivername as written -> (backend, sync driver, async driver): every scheme the settings accept
_DRIVERS: Final = {
    scheme: _BACKEND_DRIVERS["sqlite" if scheme.startswith("sqlite") else "postgresql"]
    for scheme in DATABASE_SCHEMES
}


@dataclass(frozen=True, slots=True)
class Urls:
    """One database as the two engines open it; ``backend`` is ``postgresql`` or ``sqlite``."""

    backend: str
    sync: URL
    asynchronous: URL

    @property
    def masked(self) -> str:
        """The sync URL with its password masked, safe for logs and errors."""
        return mask_url_password(self.sync.render_as_string(hide_password=False))


def resolve_urls(url: str | URL) -> Urls:
    """Both driver URLs of ``url``; a URL buttress cannot open is a ValidationError naming ``url``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValidationError(
            f"url is not a SQLAlchemy URL: {mask_url_password(str(url))!r}; "
            "e.g. postgresql+psycopg://app@127.0.0.1:5432/app or sqlite:///app.db",
            field="url",
        ) from None
    drivers = _DRIVERS.get(parsed.drivername.lower())
    if drivers is None:
        raise ValidationError(
            f"url must be a PostgreSQL or SQLite URL, got the scheme {parsed.drivername!r}; "
            f"the schemes buttress can open are {', '.join(s + '://' for s in _DRIVERS)}",
            field="url",
        )
    backend, sync_driver, async_driver = drivers
    return Urls(backend, parsed.set(drivername=sync_driver), parsed.set(drivername=async_driver))


def _in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url.query)


def _engine_args(urls: Urls, settings: DbSettings) -> dict[str, Any]:
    args: dict[str, Any] = {"pool_pre_ping": True}
    if urls.backend == "postgresql" and settings.pooler != "none":
        args["connect_args"] = {"prepare_threshold": None}  # the timeout: _pooled_events
    elif urls.backend == "postgresql" and settings.statement_timeout is not None:
        timeout = f"-c statement_timeout={_millis(settings.statement_timeout)}"
        # connect_args replaces the URL's own ``options`` (e.g. -csearch_path=app): keep both.
        given = urls.sync.query.get("options")
        args["connect_args"] = {"options": f"{given} {timeout}" if isinstance(given, str) else timeout}
    if urls.backend == "postgresql" or not _in_memory(urls.sync):
        args.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout,
        )
    return args


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _pooled_events(engine: Engine, settings: DbSettings) -> None:
    """Behind a transaction pooler: the statement timeout on each transaction (``SET LOCAL`` ends with it)."""
    if settings.statement_timeout is None:
        return
    statement = f"SET LOCAL statement_timeout = {_millis(settings.statement_timeout)}"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(statement)


def _sqlite_events(engine: Engine, settings: DbSettings) -> None:
    busy_millis = round(settings.busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN, below, not the driver's
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_millis}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get(SQLITE_BEGIN, "BEGIN"))


def build_engine(urls: Urls, settings: DbSettings) -> Engine:
    """The sync engine (psycopg 3 or sqlite3)."""
    engine = create_engine(urls.sync, **_engine_args(urls, settings))
    if urls.backend == "sqlite":
        _sqlite_events(engine, settings)
    elif settings.pooler != "none":
        _pooled_events(engine, settings)
    return engine


def build_async_engine(urls: Urls, settings: DbSettings) -> AsyncEngine:
    """The async engine (psycopg 3 async or aiosqlite)."""
    engine = create_async_engine(urls.asynchronous, **_engine_args(urls, settings))
    if urls.backend == "sqlite":
        _sqlite_events(engine.sync_engine, settings)
    elif settings.pooler != "none":
        _pooled_events(engine.sync_engine, settings)
    return engine


def close_engines(engine: Engine, async_engine: AsyncEngine) -> None:
    """Dispose of a sync and an async pool from sync code.

    The async pool's connections are closed on a short-lived event loop when no loop runs in this
    thread (both drivers can close a connection from a loop other than the one that opened it); from
    inside a running loop the pool is only detached, its connections closed when they are collected.
    """
    engine.dispose()
    pool = async_engine.sync_engine.pool
    if getattr(pool, "checkedin", None) is None or pool.checkedin() == 0:  # type: ignore[attr-defined]
        async_engine.sync_engine.dispose(close=False)
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(async_engine.dispose())
    else:
        async_engine.sync_engine.dispose(close=False)
