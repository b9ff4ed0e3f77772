"""``buttress health``: the rich table, the JSON document and the exit codes."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from buttress.clock import FakeClock
from buttress.observe.health import CheckResult, HealthRegistry, HealthReport
from buttress.observe.health_cli import format_duration, format_health_table, health_command


def _render(report: HealthReport) -> str:
    console = Console(record=True, width=140, file=io.StringIO())
    console.print(format_health_table(report))
    return console.export_text()


def _registry(clock: FakeClock) -> HealthRegistry:
    registry = HealthRegistry(clock=clock)

    def redis() -> CheckResult:
        clock.advance(0.0123)
        return CheckResult("pass", observed_value=0.84, observed_unit="ms")

    def disk() -> CheckResult:
        return CheckResult("warn", "8.0% free on /, below warn_below=10%", 8.0, "percent")

    def payments() -> None:
        raise ConnectionError("refused")

    registry.add("redis", redis)
    registry.add("disk", disk, critical=False)
    registry.add("payments", payments)
    registry.add("rss", lambda: CheckResult("pass", observed_value=3 * 2**20, observed_unit="bytes"))
    registry.add("jobs", lambda: CheckResult("pass", observed_value=12))
    registry.add("live", lambda: None, groups=("liveness",))
    return registry


def test_table_shows_symbol_name_message_and_duration() -> None:
    text = _render(_registry(FakeClock()).run_sync())
    lines = text.splitlines()
    assert lines[0].strip() == "health: ✗ fail"

    def row(name: str) -> list[str]:
        line = next(line for line in lines if f" {name} " in line)
        return [cell.strip() for cell in line.strip("│ \n").split("│")]

    # Only "redis" moves the shared fake clock, so its duration is exact; checks that overlap it
    # concurrently may see the same 12.3 ms.
    assert row("redis") == ["✓", "redis", "0.8 ms", "12.3 ms"]
    other_durations = {"0.0 ms", "12.3 ms"}
    assert row("disk")[:3] == ["⚠", "disk (optional)", "8.0% free on /, below warn_below=10%"]
    assert row("payments")[:3] == ["✗", "payments", "ConnectionError: refused"]
    assert row("rss")[:3] == ["✓", "rss", "3.0 MiB"]
    assert row("jobs")[:3] == ["✓", "jobs", "12"]
    assert row("live")[:3] == ["✓", "live", ""]
    assert {row(name)[3] for name in ("disk", "payments", "rss", "jobs", "live")} <= other_durations
    for header in ("check", "message", "duration"):
        assert header in lines[2]


def test_table_title_names_the_group() -> None:
    text = _render(_registry(FakeClock()).run_sync("liveness"))
    assert text.splitlines()[0].strip() == "health: ✓ pass (liveness)"


def test_format_duration() -> None:
    assert format_duration(0.0004) == "0.4 ms"
    assert format_duration(0.999) == "999.0 ms"
    assert format_duration(2) == "2.00 s"


def test_command_prints_the_table_and_exits_1_on_a_critical_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = health_command(json=False, registry=_registry(FakeClock()))
    out = capsys.readouterr().out
    assert code == 1
    assert "health: ✗ fail" in out
    assert "ConnectionError: refused" in out


def test_command_json_is_the_health_document(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    code = health_command(json=True, group="liveness", registry=_registry(clock))
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document == {
        "status": "pass",
        "checks": {
            "live": [
                {
                    "componentType": "component",
                    "status": "pass",
                    "time": "2023-11-14T22:13:20.000Z",
                    "duration": "0.000000s",
                    "critical": True,
                }
            ]
        },
    }


def test_an_optional_failure_warns_and_exits_0() -> None:
    registry = HealthRegistry()
    registry.add("ok", lambda: None)
    registry.add("extra", lambda: False, critical=False)
    out = io.StringIO()
    assert health_command(json=True, registry=registry, out=out) == 0
    assert json.loads(out.getvalue())["status"] == "warn"


def test_an_unknown_group_exits_2_with_a_message() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert health_command(group="readyness", registry=HealthRegistry(), out=out, err=err) == 2
    assert out.getvalue() == ""
    assert err.getvalue().startswith(
        "buttress health: unknown health check group 'readyness'; known groups: "
    )


def test_command_builds_the_default_registry_from_settings(redis_url: str, database_url: str) -> None:
    out = io.StringIO()
    settings = SimpleNamespace(redis_url=redis_url, database_url=database_url)
    code = health_command(json=False, group="readiness", settings=settings, out=out)
    text = out.getvalue()
    assert code == 0
    for name in ("redis", "database", "disk (optional)", "memory (optional)"):
        assert name in text


def _clean_buttress_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("BUTTRESS_") and not name.startswith(("BUTTRESS_TEST_", "BUTTRESS_REQUIRE_")):
            monkeypatch.delenv(name)


def test_invalid_process_settings_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = pytest.importorskip("buttress.config")
    _clean_buttress_env(monkeypatch, tmp_path)
    monkeypatch.setenv("BUTTRESS_REDIS_URL", "http://not-redis")
    config.reset_settings()
    err = io.StringIO()
    try:
        assert health_command(out=io.StringIO(), err=err) == 2
    finally:
        config.reset_settings()
    assert err.getvalue().startswith("buttress health: ")
    assert "BUTTRESS_REDIS_URL" in err.getvalue()


def test_piped_output_keeps_long_names_and_messages_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    name = "payments-gateway.eu-west-1.internal.example-corporation.com-reachable"
    message = "connection refused by 10.20.30.40:8443 after 3 attempts; the gateway's TLS certificate expired"
    registry = HealthRegistry()
    registry.add(name, lambda: CheckResult("fail", message))
    out = io.StringIO()  # not a terminal: what a pipe or a file gets
    assert health_command(registry=registry, out=out) == 1
    text = out.getvalue()
    assert "…" not in text
    assert any(name in line and message in line for line in text.splitlines())
