"""The index advice tests (hypopg: hypothetical indexes made and reset in one transaction), pooled."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from buttress.config import DbSettings
from tests.db import test_advice as suite
from tests.db._subject import MODES
from tests.pgbouncer._borrow import borrow

globals().update(borrow(suite, {"world", "advisor", "pg_advisor"}))
POOLED = {"pooler": "pgbouncer"}


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[suite.World]:
    suite.need_hypopg(database_url)
    with suite.seeded_world("postgresql", database_url, DbSettings(**POOLED)) as made:
        yield made


@pytest.fixture(params=MODES)
def advisor(request: pytest.FixtureRequest, world: suite.World) -> Iterator[suite.Advisor]:
    made = suite.Advisor(world.url, str(request.param), pool_size=1, max_overflow=0, **POOLED)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=MODES)
def pg_advisor(request: pytest.FixtureRequest, database_url: str) -> Iterator[suite.Advisor]:
    suite.need_hypopg(database_url)
    made = suite.Advisor(database_url, str(request.param), **POOLED)
    try:
        yield made
    finally:
        made.close()
