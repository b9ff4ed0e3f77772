"""The keyset pagination tests, sync and async, through PgBouncer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db import test_pagination as suite
from tests.db._subject import MODES, Subject, open_database
from tests.pgbouncer._borrow import borrow

globals().update(borrow(suite, {"subject"}))


@pytest.fixture(params=MODES)
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    database = open_database("postgresql", tmp_path, request, cursor_key=suite.KEY)
    made = Subject("postgresql", request.param, database, asyncio.new_event_loop())
    try:
        yield made
    finally:
        made.close()
