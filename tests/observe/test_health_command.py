"""`buttress health` through the typer app: exit codes, table and JSON."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from buttress.cli import app
from buttress.config import reset_settings


@pytest.fixture(autouse=True)
def _isolated(isolated_settings: None) -> None:
    """Every test here starts from default settings."""


def test_health_passes_with_only_system_checks() -> None:
    result = CliRunner().invoke(app, ["health", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["status"] in {"pass", "warn"}
    assert any(key.startswith("disk") for key in document["checks"])


def test_health_exits_1_when_a_critical_dependency_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_REDIS_URL", "redis://127.0.0.1:1/0")
    reset_settings()
    result = CliRunner().invoke(app, ["health"])
    assert result.exit_code == 1, result.output
    assert "✗" in result.stdout
    assert "redis" in result.stdout


def test_health_exits_2_on_an_unknown_group() -> None:
    result = CliRunner().invoke(app, ["health", "--group", "readyness"])
    assert result.exit_code == 2
    assert "readyness" in result.stderr
