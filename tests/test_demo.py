"""The foundation tour behind `buttress demo` runs for real: events cross processes through Redis."""

from __future__ import annotations

import pytest

from buttress._demo import run_demo


@pytest.fixture(autouse=True)
def _isolated(isolated_settings: None) -> None:
    """Every test here starts from default settings."""


def test_demo_sends_every_event_to_another_process_through_redis(redis_url: str) -> None:
    report = run_demo(events=200, redis_url=redis_url)
    assert report.events_received_locally == 200
    assert report.events_received_by_other_process == 200
    assert report.redis_url == redis_url
    assert report.work_p50_ms is not None
    assert report.work_p99_ms is not None
    assert report.work_p50_ms <= report.work_p99_ms
    assert report.health_status in {"pass", "warn"}
    assert set(report.health_checks) >= {"disk", "memory"}
    assert report.to_dict()["events_published"] == 200


def test_demo_without_redis_stays_in_process() -> None:
    report = run_demo(events=50, redis_url="redis://127.0.0.1:1/0")
    assert report.events_received_locally == 50
    assert report.events_received_by_other_process is None
    assert report.redis_url is None


def test_demo_command_prints_the_report_as_json(redis_url: str) -> None:
    import json

    from typer.testing import CliRunner

    from buttress.cli import app

    result = CliRunner().invoke(app, ["demo", "--events", "20", "--redis-url", redis_url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["events_received_by_other_process"] == 20


def test_demo_command_prints_a_table() -> None:
    from typer.testing import CliRunner

    from buttress.cli import app

    result = CliRunner().invoke(app, ["demo", "--events", "10", "--redis-url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 0, result.output
    assert "events received locally" in result.stdout
