"""The bulk-write tests (COPY into a temporary stage, upserts), sync and async, through PgBouncer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db import test_bulk as suite
from tests.db._subject import MODES, Subject, subjects
from tests.pgbouncer._borrow import borrow

globals().update(borrow(suite, {"subject"}))


@pytest.fixture(params=MODES)
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    yield from subjects(request, tmp_path, "postgresql", request.param)
