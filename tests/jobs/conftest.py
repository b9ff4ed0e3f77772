"""Fixtures for the jobs tests: a job database of each kind that nothing else touches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests._fresh_db import fresh_postgres

KINDS = ["sqlite", "postgresql"]


def fresh_database(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> Iterator[str]:
    """A new SQLite file, or a new PostgreSQL database dropped afterwards (with FORCE: workers may linger)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        return
    with fresh_postgres(request.getfixturevalue("database_url"), "buttress_jobs") as url:
        yield url


@pytest.fixture(params=KINDS)
def jobs_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh job database, once per kind and test."""
    yield from fresh_database(request, tmp_path, request.param)


@pytest.fixture(scope="module", params=KINDS)
def module_jobs_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh job database per kind shared by a module's tests (which keep to their own names and queues)."""
    yield from fresh_database(request, tmp_path_factory.mktemp("jobs"), request.param)
