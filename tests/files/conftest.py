"""Fixtures for the files tests: a file database of each kind, emptied per test, and stores over it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from buttress.clock import FakeClock
from buttress.config import FilesSettings
from buttress.db import Database
from buttress.files import FileStore, LocalBlobStore
from buttress.observe.metrics import MetricsRegistry
from tests._fresh_db import fresh_postgres

KINDS = ["sqlite", "postgresql"]
TABLES = ("buttress_file_tags", "buttress_files", "buttress_file_reservations", "buttress_file_usage")


@pytest.fixture(scope="module", params=KINDS)
def files_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A file database per kind for a module, migrated once (each test starts from empty tables)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('files') / 'files.db'}"
        migrate(url)
        yield url
        return
    with fresh_postgres(request.getfixturevalue("database_url"), "buttress_files") as url:
        migrate(url)
        yield url


def migrate(url: str) -> None:
    db = Database(url)
    try:
        db.upgrade()
    finally:
        db.close()


@pytest.fixture
def files_db(files_url: str) -> Iterator[Database]:
    """The module's database with the file tables emptied."""
    db = Database(files_url)
    with db.engine.begin() as connection:
        for table in TABLES:
            connection.execute(text(f"DELETE FROM {table}"))
    yield db
    db.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_time=time.time())  # file mtimes are real: the clock starts at now


@pytest.fixture
def make_store(files_db: Database, tmp_path: Path, clock: FakeClock) -> Callable[..., FileStore]:
    """``make_store(**settings)``: a FileStore over a fresh directory, the test's database and clock."""

    def make(blobs: Any = None, **settings: Any) -> FileStore:
        return FileStore(
            blobs if blobs is not None else LocalBlobStore(tmp_path / "blobs"),
            db=files_db,
            settings=FilesSettings(**settings),
            clock=clock,
            metrics=MetricsRegistry(),
        )

    return make


@pytest.fixture
def store(make_store: Callable[..., FileStore]) -> FileStore:
    return make_store()


def leftover_bytes(root: Path) -> int:
    """Bytes under ``root`` (temp data included)."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
