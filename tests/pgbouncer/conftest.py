"""Fixtures for the suites run through PgBouncer: one pooler per session, in transaction pooling mode.

``database_url`` and ``database_pooler`` are overridden here, so a borrowed test that opens the database
through them (tests/db/_subject.py ``open_database``) talks to PgBouncer with ``db.pooler = pgbouncer``.
``direct_url`` is the server itself (for what must not go through the pooler: LISTEN, CREATE DATABASE).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._fresh_db import fresh_postgres
from tests._pgbouncer import PgBouncer, missing_reason
from tests.conftest import DATABASE_URL, need_service, services_required


@pytest.fixture(scope="session")
def direct_url() -> str:
    """The PostgreSQL server itself (not the pooler)."""
    return need_service("PostgreSQL", DATABASE_URL, 5432)


@pytest.fixture(scope="session")
def pgbouncer(direct_url: str) -> Iterator[PgBouncer]:
    """A PgBouncer (transaction pooling) in front of ``direct_url``'s server, for the whole session."""
    reason = missing_reason()
    if reason is not None:
        if services_required():
            pytest.fail(
                reason + " and BUTTRESS_REQUIRE_SERVICES=1 turns the skip into a failure", pytrace=False
            )
        pytest.skip(reason)
    with PgBouncer(direct_url) as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
def database_url(pgbouncer: PgBouncer, direct_url: str) -> str:
    """The test database, through PgBouncer."""
    return pgbouncer.url(direct_url)


@pytest.fixture(scope="session")
def database_pooler() -> str:
    return "pgbouncer"


@pytest.fixture(scope="module")
def fresh_pair(pgbouncer: PgBouncer, direct_url: str) -> Iterator[tuple[str, str]]:
    """A new database for the module: (its URL through PgBouncer, its direct URL); made and dropped direct."""
    with fresh_postgres(direct_url, "buttress_pgb") as url:
        yield pgbouncer.url(url), url
