"""A batch whose transaction fails for real is written again as a whole, and nothing of it is left half-done.

The database's retry sleeps on a ``FakeClock(auto_advance=False)``, so the test sees the writer parked
between two attempts, checks what the table holds right then, and only then lets it go on.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from buttress.clock import FakeClock
from buttress.config import DbSettings
from buttress.db import Database
from buttress.resilience import Retry
from examples.summarizer.store import SummaryStore


def rows(count: int, prefix: str = "https://news.test/") -> list[dict[str, Any]]:
    return [
        {
            "url": f"{prefix}{n:03}",
            "host": "news.test",
            "summary": f"summary {n}",
            "prompt_tokens": 10 + n,
            "completion_tokens": 5,
            "cost": 0.0001,
            "created_at": 1_700_000_000.0 + n,
        }
        for n in range(count)
    ]


def write_in_thread(
    store: SummaryStore, batch: list[dict[str, Any]]
) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def write() -> None:
        try:
            outcome.append(store.write(batch, batch_size=len(batch)))
        except Exception as exc:  # reported to the test, which fails on it
            outcome.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    return thread, outcome


def test_a_batch_blocked_by_a_sqlite_write_lock_is_retried_whole(tmp_path: Path) -> None:
    path = tmp_path / "summaries.db"
    clock = FakeClock(auto_advance=False)
    retry = Retry(on=Exception, attempts=5, clock=clock)  # what is retried is the database's call
    db = Database(f"sqlite:///{path}", settings=DbSettings(busy_timeout=0.05), retry=retry)
    store = SummaryStore(db)
    store.create()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the file's write lock
    try:
        thread, outcome = write_in_thread(store, rows(30))
        clock.wait_for_sleepers(1, timeout=10.0)  # attempt 1 failed with "database is locked"
        assert outcome == []
        assert store.count() == 0
        holder.execute("ROLLBACK")
        clock.advance(1.0)
        thread.join(timeout=10.0)
    finally:
        holder.close()
    assert outcome == [30]
    assert len(clock.sleeps) == 1
    assert store.count() == 30
    db.close()


@pytest.mark.postgres
def test_a_batch_whose_postgresql_backend_is_killed_is_retried_whole(database_url: str) -> None:
    """A row the batch updates is locked elsewhere; the batch's backend, blocked mid-statement after
    inserting earlier rows, is terminated; those rows vanish with it, and the retry writes all once."""
    name = f"summaries_{uuid.uuid4().hex[:8]}"
    clock = FakeClock(auto_advance=False)
    db = Database(database_url, retry=Retry(on=Exception, attempts=5, clock=clock))
    store = SummaryStore(db, name)
    store.create()
    admin = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")
    batch = rows(20)
    try:
        store.write(batch[10:11], batch_size=1)  # the row the holder will lock
        with admin.connect() as holder, admin.connect() as killer:
            holder.execute(text("BEGIN"))
            table = store.table
            holder.execute(select(table).where(table.c.url == batch[10]["url"]).with_for_update())
            thread, outcome = write_in_thread(store, batch)
            pid = wait_for_blocked_backend(killer, name)
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            clock.wait_for_sleepers(1, timeout=10.0)  # attempt 1 lost its connection
            assert outcome == []
            assert store.count() == 1
            holder.execute(text("ROLLBACK"))
            clock.advance(1.0)
            thread.join(timeout=10.0)
        assert outcome == [20]
        assert len(clock.sleeps) == 1
        assert store.count() == 20
        page = store.page(limit=50)
        assert [row["url"] for row in page.items] == [row["url"] for row in reversed(batch)]
    finally:
        store.drop()
        admin.dispose()
        db.close()


def wait_for_blocked_backend(connection: Any, table: str, timeout: float = 10.0) -> int:
    """The pid of the backend waiting on a row lock of ``table`` (a condition polled until a deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = connection.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE :pattern AND pid <> pg_backend_pid()"
            ),
            {"pattern": f"%{table}%"},
        ).scalar()
        if pid is not None:
            return int(pid)
        connection.execute(text("SELECT pg_sleep(0.01)"))
    raise AssertionError(f"no backend blocked on {table} within {timeout} s")
