"""The files tests' fixtures, their database reached through PgBouncer (migrated and emptied direct)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from buttress.config import DbSettings
from buttress.db import Database
from tests._fresh_db import fresh_postgres
from tests._pgbouncer import PgBouncer
from tests.files.conftest import TABLES, clock, make_store, migrate, store

__all__ = ["clock", "files_db", "files_url", "make_store", "store"]


@pytest.fixture(scope="module")
def files_url(pgbouncer: PgBouncer, direct_url: str) -> Iterator[str]:
    """A file database for the module, migrated direct; its URL through the pooler."""
    with fresh_postgres(direct_url, "buttress_pgb_files") as url:
        migrate(url)
        yield pgbouncer.url(url)


@pytest.fixture
def files_db(files_url: str) -> Iterator[Database]:
    """The module's database through the pooler (``db.pooler = pgbouncer``), its file tables emptied."""
    db = Database(files_url, settings=DbSettings(pooler="pgbouncer"))
    with db.engine.begin() as connection:
        for table in TABLES:
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - buttress's own table names
    yield db
    db.close()
