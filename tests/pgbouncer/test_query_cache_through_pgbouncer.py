"""The query cache tests (commit announcements, invalidation), sync and async, through PgBouncer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db import test_query_cache as suite
from tests.db._subject import MODES, Subject, subjects
from tests.pgbouncer._borrow import borrow

LEFT_OUT = {
    "test_invalidation_survives_killed_connections": "it finds its connections by application_name, which "
    "a pooler sets on whichever server connection a transaction gets: the killing query kills itself",
}
globals().update(borrow(suite, {"subject", "qc", "pg_qc"}, LEFT_OUT))


@pytest.fixture(params=MODES)
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    yield from subjects(request, tmp_path, "postgresql", request.param)
