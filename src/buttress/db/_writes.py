"""The tables a transaction wrote, noted on its connection and announced once it has committed.

Readers of "what changed" (the query cache's per-table version counters, the replica router's
read-your-writes) must hear of a write only once it is committed, never before. Everything that writes
around SQLAlchemy's compiled statements (the bulk writers' COPY, raw driver calls) notes its tables here
with :func:`note_written`; the connection's info dict carries them until the transaction ends.

:class:`Commits` does the rest with engine events, on the sync engine and the async engine alike:

- ``after_cursor_execute`` notes the table of every compiled INSERT/UPDATE/DELETE (ORM flushes included)
  and of compiled DDL, and parses the SQL of ``text()`` and driver-level statements
  (:func:`tables_written_by`);
- ``rollback`` forgets the open transaction's tables; ``rollback_savepoint`` puts back the set as it
  was at the innermost open ``savepoint``; ``commit`` (which SQLAlchemy fires just *before* the DBAPI
  commit) moves the set aside as "committing";
- the pool's ``checkin`` (the connection is returned after the commit has returned) announces the
  committing set. A sync engine calls the listeners right there, so ``with db.session()``,
  ``db.transaction()`` and a raw ``with db.engine.begin()`` all announce before their block returns.
  On the async engine that hook runs on the event loop and must not do network I/O: inside
  ``db.asession()``/``db.atransaction()`` (which open a :meth:`Commits.collect` scope) the set is handed
  to the scope, and the wrapper awaits :meth:`Commits.aannounce` after the commit returned; a raw
  ``async with db.async_engine.begin()`` outside them gets its announcement as a task scheduled on the
  loop, so it lands shortly *after* its block returns.

A commit whose outcome is unknown (the connection died during it) is announced anyway: a spurious
announcement only costs a cache miss, a missing one would serve stale data.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Final

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "WRITTEN",
    "AsyncCommitListener",
    "CommitListener",
    "Commits",
    "announced",
    "current_session",
    "note_written",
    "session_scope",
    "table_key",
    "tables_written_by",
]

WRITTEN: Final = "buttress.written"
"""The key of ``connection.info`` holding the set of table names the open transaction wrote."""

_COMMITTING: Final = "buttress.committing"
_SAVEPOINTS: Final = "buttress.savepoints"

_log = logging.getLogger("buttress.db")

CommitListener = Callable[[frozenset[str]], None]
"""Called with the (normalised) names of the tables a transaction wrote, after it committed."""
AsyncCommitListener = Callable[[frozenset[str]], Awaitable[None]]


def note_written(connection: Any, tables: Iterable[str]) -> None:
    """Record that the open transaction on ``connection`` (a SQLAlchemy Connection) wrote ``tables``."""
    written: set[str] = connection.info.setdefault(WRITTEN, set())
    written.update(tables)


# -- table names --------------------------------------------------------------------------------------

_IDENT = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w$]+)'
_NAME = rf"({_IDENT}(?:\s*\.\s*{_IDENT})*)"
_NAMES = rf"({_IDENT}(?:\s*\.\s*{_IDENT})*(?:\s*,\s*{_IDENT}(?:\s*\.\s*{_IDENT})*)*)"
_WRITES: Final = re.compile(
    "|".join(
        (
            # INSERT [OR x] INTO t, REPLACE INTO t
            rf"\b(?:INSERT(?:\s+OR\s+\w+)?|REPLACE)\s+INTO\s+{_NAME}",
            # UPDATE [OR x] [ONLY] t [[AS] alias] SET: SET is required, so "FOR UPDATE OF t" is no write
            rf"\bUPDATE\s+(?:OR\s+\w+\s+)?(?:ONLY\s+)?{_NAME}\s+(?:(?:AS\s+)?[\w$\"]+\s+)?SET\b",
            rf"\bDELETE\s+FROM\s+(?:ONLY\s+)?{_NAME}",
            rf"\bMERGE\s+INTO\s+(?:ONLY\s+)?{_NAME}",
            rf"\bCOPY\s+{_NAME}\s*(?:\([^)]*\)\s*)?FROM\b",
            rf"\bTRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?{_NAMES}",
            rf"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAMES}",
            (
                rf"\b(?:CREATE|ALTER)\s+(?:(?:GLOBAL|LOCAL|TEMP|TEMPORARY|UNLOGGED)\s+)*TABLE\s+"
                rf"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:ONLY\s+)?{_NAME}"
            ),
            rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\b[^;]*?\bON\s+(?:ONLY\s+)?{_NAME}",
        )
    ),
    re.IGNORECASE,
)
_SPLIT_NAMES: Final = re.compile(rf"{_NAME}")


def table_key(name: str) -> str:
    """The key a table is known by: unqualified, unquoted, lower-case.

    Two tables of one name in different schemas (or differing only by quoted case) share a key, so a
    write to one invalidates reads of both: more misses, never a stale read.
    """
    last = name.rsplit(".", 1)[-1].strip()
    if last[:1] in {'"', "`", "["}:
        last = last[1:-1]
    return last.lower()


def _split(names: str) -> list[str]:
    return [table_key(match.group(1)) for match in _SPLIT_NAMES.finditer(names)]


def tables_written_by(sql: str) -> set[str]:
    """The tables a SQL string writes: INSERT/REPLACE INTO, UPDATE ... SET, DELETE FROM, MERGE INTO,
    COPY ... FROM, TRUNCATE, and DDL on a table (CREATE/ALTER/DROP TABLE, CREATE INDEX ... ON).

    Reads nothing into comments or literals: a table named in one is counted as written (a harmless
    invalidation). Writes hidden in a function or trigger body cannot be seen; note them with
    :func:`note_written` or invalidate by hand.
    """
    head = sql.lstrip()[:6]
    if head.upper() == "SELECT":  # a plain SELECT writes nothing (data-modifying CTEs start with WITH)
        return set()
    written: set[str] = set()
    for match in _WRITES.finditer(sql):
        for group in match.groups():
            if group is not None:
                written.update(_split(group))
    return written


def _compiled_tables(context: Any) -> Iterable[str] | None:
    """The tables a compiled statement writes; None when only its SQL text can tell (``text()``)."""
    compiled = context.compiled
    if compiled is None:
        return None
    if context.isinsert or context.isupdate or context.isdelete:
        table = getattr(compiled.statement, "table", None)
        name = getattr(table, "name", None)
        return None if name is None else (name,)
    if context.isddl:
        element = getattr(compiled.statement, "element", None)
        table = getattr(element, "table", element)  # an Index names its table; a Table is itself
        name = getattr(table, "name", None)
        return None if not isinstance(name, str) else (name,)
    statement = compiled.statement
    if getattr(statement, "is_select", False):
        return ()
    return None


# -- announcing ---------------------------------------------------------------------------------------

_COLLECTOR: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "buttress_db_commit_collector", default=None
)


class Commits:
    """Notes the tables each transaction on ``engine``/``async_engine`` writes; announces them after commit.

    Listeners (:meth:`on_commit`) get a frozenset of :func:`table_key` names; a listener that raises is
    logged and the others still run (the transaction is committed: raising would tell the caller it
    failed).
    """

    def __init__(self, engine: Engine, async_engine: AsyncEngine) -> None:
        self._listeners: tuple[tuple[CommitListener, AsyncCommitListener | None], ...] = ()
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._install(engine, self.announce)
        self._install(async_engine.sync_engine, self._hand_over)

    def on_commit(
        self, listener: CommitListener, alistener: AsyncCommitListener | None = None
    ) -> Callable[[], None]:
        """Call ``listener(tables)`` after each committed transaction that wrote tables; the remover.

        After an async commit ``alistener(tables)`` is awaited instead when given (``listener`` is then
        only called by sync commits; without ``alistener``, ``listener`` must not block).
        """
        pair = (listener, alistener)
        with self._lock:
            self._listeners = (*self._listeners, pair)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(p for p in self._listeners if p is not pair)

        return remove

    def announce(self, tables: Iterable[str]) -> None:
        """Call every sync listener with ``tables`` (nothing when empty)."""
        names = frozenset(tables)
        if not names:
            return
        for listener, _ in self._listeners:
            try:
                listener(names)
            except Exception:  # noqa: BLE001 - the commit stands; a listener's bug must not undo the others
                _log.exception("a db on_commit listener failed for %d tables", len(names))

    async def aannounce(self, tables: Iterable[str]) -> None:
        """Await every async listener (or call the sync one) with ``tables`` (nothing when empty)."""
        names = frozenset(tables)
        if not names:
            return
        for listener, alistener in self._listeners:
            try:
                if alistener is None:
                    listener(names)
                else:
                    await alistener(names)
            except Exception:  # noqa: BLE001 - the commit stands; a listener's bug must not undo the others
                _log.exception("a db on_commit listener failed for %d tables", len(names))

    def collect(self) -> tuple[set[str], contextvars.Token[set[str] | None]]:
        """Open a scope (in this task) whose async commits hand their tables to the returned set."""
        collected: set[str] = set()
        return collected, _COLLECTOR.set(collected)

    @staticmethod
    def release(token: contextvars.Token[set[str] | None]) -> None:
        """Close the scope :meth:`collect` opened."""
        _COLLECTOR.reset(token)

    def _hand_over(self, tables: set[str]) -> None:
        """The async engine's checkin: to the open scope, else to a task on the loop (not here: no I/O)."""
        collected = _COLLECTOR.get()
        if collected is not None:
            collected.update(tables)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # returned outside any loop (a garbage-collected connection): no loop to block
            self.announce(tables)
            return
        task = loop.create_task(self.aannounce(tables))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _install(engine: Engine, deliver: Callable[[set[str]], None]) -> None:
        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            info = connection.info
            info[WRITTEN] = set()
            info.pop(_SAVEPOINTS, None)
            committing = info.pop(_COMMITTING, None)
            if committing:  # a connection kept open across commits: the previous one has returned
                deliver(committing)

        @event.listens_for(engine, "after_cursor_execute")
        def _executed(
            connection: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
        ) -> None:
            tables = _compiled_tables(context) if context is not None else None
            if tables is None:
                tables = tables_written_by(statement)
            if tables:
                written: set[str] = connection.info.setdefault(WRITTEN, set())
                written.update(table_key(name) for name in tables)

        # Savepoints nest strictly (SQLAlchemy ends inner ones first) and the event is fired before the
        # name is made, so a stack: rolling back restores the innermost mark, releasing drops it.
        @event.listens_for(engine, "savepoint")
        def _savepoint(connection: Any, _name: str | None) -> None:
            info = connection.info
            info.setdefault(_SAVEPOINTS, []).append(set(info.get(WRITTEN, ())))

        # A connection that died (invalidated) has no info to read (SQLAlchemy raises on it), and its
        # pool record's info is cleared anyway: there is nothing to forget.
        @event.listens_for(engine, "rollback_savepoint")
        def _rollback_savepoint(connection: Any, _name: str, _context: Any) -> None:
            marks = None if connection.invalidated else connection.info.get(_SAVEPOINTS)
            if marks:
                connection.info[WRITTEN] = marks.pop()

        @event.listens_for(engine, "release_savepoint")
        def _release_savepoint(connection: Any, _name: str, _context: Any) -> None:
            marks = None if connection.invalidated else connection.info.get(_SAVEPOINTS)
            if marks:
                marks.pop()

        @event.listens_for(engine, "rollback")
        def _rollback(connection: Any) -> None:
            if connection.invalidated:
                return
            info = connection.info
            info.pop(WRITTEN, None)
            info.pop(_SAVEPOINTS, None)

        @event.listens_for(engine, "commit")
        def _commit(connection: Any) -> None:
            info = connection.info
            written = info.pop(WRITTEN, None)
            info.pop(_SAVEPOINTS, None)
            if written:
                info.setdefault(_COMMITTING, set()).update(written)

        def _flush(_dbapi_connection: Any, record: Any, *_rest: Any) -> None:
            committing = record.info.pop(_COMMITTING, None)
            if committing:
                deliver(committing)

        event.listen(engine, "checkin", _flush)
        event.listen(engine, "invalidate", _flush)  # the commit's outcome is unknown: announce anyway


# -- the session a read runs beside -------------------------------------------------------------------

_SESSION: contextvars.ContextVar[Any] = contextvars.ContextVar("buttress_db_session", default=None)


@contextlib.contextmanager
def session_scope(session: Any) -> Iterator[None]:
    """Make ``session`` the one :func:`current_session` returns in this thread or task, for the block."""
    token = _SESSION.set(session)
    try:
        yield
    finally:
        _SESSION.reset(token)


def current_session() -> Any:
    """The session of the innermost ``db.session()``/``db.transaction()`` block around the caller, or None."""
    return _SESSION.get()


@contextlib.asynccontextmanager
async def announced(commits: Commits) -> AsyncIterator[None]:
    """Collect the async commits of the block and await their announcement once it returned (not on error)."""
    collected, token = commits.collect()
    try:
        yield
    finally:
        commits.release(token)
    await commits.aannounce(collected)
