"""What the ops-side job tests share: a database per backend, a ``Jobs`` on it, and table cleanup.

SQLite: a new file per test. PostgreSQL: a database of its own per test module (created on the server of
``database_url``, dropped afterwards), its job tables emptied before each test, so these tests never see
the jobs of other tests running at the same time on the shared ``test`` database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from tests._fresh_db import fresh_postgres

from buttress.clock import Clock
from buttress.config import JobsSettings
from buttress.db import Database
from buttress.jobs import Jobs
from buttress.observe.metrics import MetricsRegistry

BACKENDS = ("sqlite", "postgresql")
JOB_TABLES = ("buttress_job_ticks", "buttress_job_schedules", "buttress_jobs", "buttress_job_workers")
FAST = {"poll_interval": 0.01, "cancel_poll_interval": 0.02, "grace": 5.0}


@pytest.fixture(scope="module")
def module_pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL database of this module's own, dropped after it."""
    with fresh_postgres(request.getfixturevalue("database_url"), "buttress_ops") as url:
        yield url


def empty_job_tables(url: str) -> None:
    """Delete every row of the job tables that exist (a fresh database may have none yet)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for table in JOB_TABLES:
                exists = connection.execute(
                    text("SELECT 1 FROM information_schema.tables WHERE table_name = :t"), {"t": table}
                ).first()
                if exists:
                    connection.execute(text(f"DELETE FROM {table}"))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A job database: a new SQLite file, or this module's PostgreSQL database with empty job tables."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = request.getfixturevalue("module_pg_url")
    empty_job_tables(url)
    return url


def make_jobs(
    url: str, *, clock: Clock | None = None, metrics: MetricsRegistry | None = None, **settings: Any
) -> Jobs:
    """A ``Jobs`` on ``url`` with fast polling, its own metrics registry unless one is given."""
    return Jobs(
        Database(url),
        settings=JobsSettings(**{**FAST, **settings}),
        clock=clock,
        metrics=metrics or MetricsRegistry(),
    )


@pytest.fixture
def jobs(db_url: str) -> Iterator[Jobs]:
    """A ``Jobs`` on ``db_url`` with its tables created; the database closed afterwards."""
    made = make_jobs(db_url)
    made.ensure_schema()
    yield made
    made.db.close()


def sql(jobs: Jobs, statement: str, **params: Any) -> list[Any]:
    """Run one statement on ``jobs``'s database; its rows (empty for a statement that returns none)."""
    with jobs.db.engine.begin() as connection:
        result = connection.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []
