"""Fresh databases for the scheduler tests: a SQLite file, or a PostgreSQL database created and dropped.

Each test gets tables nobody else writes to (other suites share the server's ``test`` database), so counts
of jobs and ticks are exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from buttress.db import Database

KINDS = ("sqlite", "postgresql")


@contextmanager
def fresh_url(kind: str, tmp_path: Path, pg_base: str | None) -> Iterator[str]:
    """The URL of an empty database of ``kind`` with the jobs tables, removed afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'sched.db'}"
        _upgrade(url)
        yield url
        return
    assert pg_base is not None
    name = f"buttress_sched_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        _upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _upgrade(url: str) -> None:
    db = Database(url)
    try:
        db.upgrade()
    finally:
        db.close()


def rows(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read on a connection of its own (what another process would see)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()
