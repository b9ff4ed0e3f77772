"""The database conformance tests (sessions, transactions, retries), sync and async, through PgBouncer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db import test_database as suite
from tests.db._subject import MODES, Subject
from tests.pgbouncer._borrow import borrow

globals().update(borrow(suite, {"subject", "kind"}))


@pytest.fixture(params=MODES)
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    yield from suite._subject(request, tmp_path, "postgresql", request.param)


@pytest.fixture
def kind() -> str:
    return "postgresql"
