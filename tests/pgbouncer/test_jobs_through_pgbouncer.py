"""The jobs conformance suite, sync and async, on a PostgreSQL reached through PgBouncer (transaction mode).

Every test of tests/jobs/test_jobs_conformance.py runs here with ``db.pooler = pgbouncer`` and the
workers' LISTEN connection on ``jobs.listen_url`` (the server itself).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from buttress.config import DbSettings
from tests.jobs import test_jobs_conformance as suite
from tests.jobs._subject import MODES, Subject

globals().update({name: test for name, test in vars(suite).items() if name.startswith("test_")})


@pytest.fixture(params=MODES)
def subject(request: pytest.FixtureRequest, fresh_pair: tuple[str, str]) -> Iterator[Subject]:
    pooled, direct = fresh_pair
    made = Subject(pooled, request.param, db=DbSettings(pooler="pgbouncer"), listen_url=direct)
    try:
        yield made
    finally:
        made.close()
