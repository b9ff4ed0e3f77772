"""The scheduler tests (several schedulers on one database, each tick fired once) through PgBouncer.

The schedulers' databases go through the pooler; the test's own reads and the migration stay direct.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from buttress.config import DbSettings, JobsSettings
from buttress.db import Database
from buttress.jobs import Jobs, Registry
from tests._fresh_db import fresh_postgres
from tests._pgbouncer import PgBouncer
from tests.jobs import test_scheduler as suite
from tests.jobs._sched_db import upgraded
from tests.pgbouncer._borrow import borrow

globals().update(borrow(suite, {"world"}))


class PooledWorld(suite.World):
    """The suite's World whose ``jobs()`` open the database through the pooler."""

    def __init__(self, direct: str, pooled: str) -> None:
        super().__init__(direct)
        self.pooled = pooled

    def jobs(self, registry: Registry) -> Jobs:
        db = Database(self.pooled, settings=DbSettings(pooler="pgbouncer"))
        self._opened.append(db)
        return Jobs(db, settings=JobsSettings(auto_migrate=False), clock=self.clock, registry=registry)


@pytest.fixture
def world(pgbouncer: PgBouncer, direct_url: str) -> Iterator[suite.World]:
    with fresh_postgres(direct_url, "buttress_pgb_sched") as url:
        made = PooledWorld(upgraded(url), pgbouncer.url(url))
        try:
            yield made
        finally:
            made.close()
