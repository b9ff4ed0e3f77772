"""The subject of the database tests: SQLite (a file in tmp_path) and PostgreSQL, each sync and async.

A :class:`Subject` runs SQL through ``db.session()`` or ``db.asession()`` (on an event loop owned by the
fixture, so the async pool lives on one loop). Each test names its tables with a fresh suffix and drops
them afterwards, so PostgreSQL needs no cleanup between runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import CursorResult, Result, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from buttress.config import DbSettings
from buttress.db import Database

T = TypeVar("T")
KINDS = ["sqlite", "postgresql"]
MODES = ["sync", "async"]


def open_database(kind: str, tmp_path: Path, request: pytest.FixtureRequest, **options: Any) -> Database:
    """A Database of ``kind`` with the ``db`` settings ``options``."""
    if kind == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'test.db'}", settings=DbSettings(**options))
    pooler = request.getfixturevalue("database_pooler")
    return Database(request.getfixturevalue("database_url"), settings=DbSettings(pooler=pooler, **options))


def rows_of(result: Result[Any]) -> list[tuple[Any, ...]]:
    """The rows a statement returned; none for DDL and DML."""
    cursor = cast("CursorResult[Any]", result)
    return [tuple(row) for row in cursor] if cursor.returns_rows else []


class Subject:
    """A database under test, driven sync or async through the same names."""

    def __init__(self, kind: str, mode: str, db: Database, loop: asyncio.AbstractEventLoop) -> None:
        self.kind = kind
        self.mode = mode
        self.db = db
        self.loop = loop
        self.suffix = uuid.uuid4().hex[:8]
        self.tables: list[str] = []

    def table(self, name: str) -> str:
        """A table name unique to this test, dropped at teardown."""
        full = f"{name}_{self.suffix}"
        self.tables.append(full)
        return full

    def execute(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction; the rows it returned (none for DDL/DML)."""
        if self.mode == "sync":
            with self.db.session() as session:
                return rows_of(session.execute(text(sql), params))

        async def run() -> list[tuple[Any, ...]]:
            async with self.db.asession() as session:
                return rows_of(await session.execute(text(sql), params))

        return self.run(run())

    def transaction(
        self,
        unit: Callable[[Session], T],
        aunit: Callable[[AsyncSession], Coroutine[Any, Any, T]],
        **options: Any,
    ) -> T:
        """``db.transaction(unit)`` or ``db.atransaction(aunit)``, by mode."""
        if self.mode == "sync":
            return self.db.transaction(unit, **options)
        return self.run(self.db.atransaction(aunit, **options))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        for table in reversed(self.tables):
            with self.db.session() as session:
                session.execute(text(f"DROP TABLE IF EXISTS {table}"))
        self.loop.run_until_complete(self.db.aclose())
        self.loop.close()


def subjects(request: pytest.FixtureRequest, tmp_path: Path, kind: str, mode: str) -> Iterator[Subject]:
    """A fixture body: the Subject of ``kind`` and ``mode``, closed (its tables dropped) afterwards."""
    made = Subject(kind, mode, open_database(kind, tmp_path, request), asyncio.new_event_loop())
    try:
        yield made
    finally:
        made.close()
