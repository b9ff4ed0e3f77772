"""``buttress schedules``: what the schedulers stored, with next fire times in each schedule's time zone."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from tests.jobs._sched_db import upgraded

from buttress._console import cli_console
from buttress.clock import FakeClock
from buttress.config import JobsSettings
from buttress.db import Database
from buttress.jobs import Jobs, Registry, Scheduler, schedule
from buttress.jobs.schedules_cli import schedules_command
from buttress.resilience import Retry

NOON = datetime(2027, 3, 27, 12, tzinfo=UTC).timestamp()  # the day before London's clocks go forward


@pytest.fixture
def url(jobs_url: str) -> str:
    return upgraded(jobs_url)


def run(jobs: Jobs, *, as_json: bool, count: int = 3) -> tuple[int, str]:
    out = io.StringIO()
    code = schedules_command(jobs=jobs, count=count, as_json=as_json, console=cli_console(file=out))
    return code, out.getvalue()


def test_lists_active_and_deactivated_schedules_with_next_fires(url: str) -> None:
    clock = FakeClock(start_time=NOON)
    both = Registry()
    schedule(at=["09:00", "21:00"], tz="Europe/London", name="post", registry=both)(lambda: None)
    schedule(every=60, name="poll", registry=both, overlap="allow")(lambda: None)
    db = Database(url)
    try:
        jobs = Jobs(db, settings=JobsSettings(auto_migrate=False), clock=clock, registry=both)
        Scheduler(jobs).reconcile()
        clock.advance(120)
        Scheduler(jobs).tick()
        only_post = Registry()
        schedule(at=["09:00", "21:00"], tz="Europe/London", name="post", registry=only_post)(lambda: None)
        Scheduler(
            Jobs(db, settings=JobsSettings(auto_migrate=False), clock=clock, registry=only_post)
        ).reconcile()
        code, text = run(jobs, as_json=True)
        assert code == 0
        described = {item["name"]: item for item in json.loads(text)}
        london = ZoneInfo("Europe/London")
        assert described["post"]["spec"] == "at 09:00,21:00 Europe/London"
        assert described["post"]["next_fires"] == [
            datetime(2027, 3, 27, 21, tzinfo=london).timestamp(),
            datetime(2027, 3, 28, 9, tzinfo=london).timestamp(),  # BST from here: 08:00 UTC
            datetime(2027, 3, 28, 21, tzinfo=london).timestamp(),
        ]
        assert described["post"]["active"] is True
        assert described["post"]["last_fire_at"] is None
        assert described["poll"]["active"] is False
        assert described["poll"]["next_fires"] == []
        assert described["poll"]["last_fire_at"] == NOON + 120
        code, text = run(jobs, as_json=False, count=2)
        assert code == 0
        assert "2027-03-28T09:00:00+01:00" in text
        assert "no (no longer defined in code)" in text
        assert "catch_up=once overlap=skip" in text
    finally:
        db.close()


def test_an_empty_table_says_how_schedules_get_there(url: str) -> None:
    db = Database(url)
    try:
        code, text = run(
            Jobs(db, settings=JobsSettings(auto_migrate=False), registry=Registry()), as_json=False
        )
    finally:
        db.close()
    assert code == 0
    assert "no schedules stored yet" in text


def test_an_unreachable_database_exits_1_with_the_reason() -> None:
    db = Database("postgresql://nobody@127.0.0.1:9/nothing", retry=Retry(on=ConnectionError, attempts=1))
    try:
        code, text = run(
            Jobs(db, settings=JobsSettings(auto_migrate=False), registry=Registry()), as_json=False
        )
    finally:
        db.close()
    assert code == 1
    assert "cannot read the schedules" in text
