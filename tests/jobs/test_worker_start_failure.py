"""A worker whose thread fails at start: ``running()`` raises that failure at once, not a TimeoutError."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from buttress.db import Database
from buttress.errors import BackendUnavailable
from buttress.jobs import Jobs


def test_a_worker_that_cannot_reach_its_database_raises_why_at_once(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'jobs.db'}")
    try:
        worker = Jobs(db).worker()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as caught, worker.running(timeout=30.0):
            pytest.fail("the block must not run: the worker never started")
        assert time.monotonic() - started < 10.0  # well before the 30 s start timeout
        assert "jobs.db" in str(caught.value)
    finally:
        db.close()


def test_a_failure_names_the_database_with_its_password_masked(database_url: str) -> None:
    from sqlalchemy import make_url

    url = make_url(database_url).set(password="s3cret-pw-771", port=1, host="127.0.0.1")
    db = Database(url.render_as_string(hide_password=False))
    try:
        worker = Jobs(db).worker()
        with pytest.raises(BackendUnavailable) as caught, worker.running(timeout=30.0):
            pytest.fail("the block must not run: the worker never started")
        assert "s3cret-pw-771" not in str(caught.value)
        assert "127.0.0.1:1" in str(caught.value)
    finally:
        db.close()
