"""The query tracking tests (statistics, slow log with EXPLAIN, N+1), sync and async, through PgBouncer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db import test_tracking as suite
from tests.db._subject import MODES, Subject
from tests.pgbouncer._borrow import borrow

globals().update(borrow(suite, {"subject", "async_subject"}))


@pytest.fixture(params=MODES)
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    made = suite._subject(request, tmp_path, "postgresql", request.param)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def async_subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    made = suite._subject(request, tmp_path, "postgresql", "async")
    try:
        yield made
    finally:
        made.close()
