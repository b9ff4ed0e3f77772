"""The default health registry's disk and memory checks follow the ``observe`` settings: the configured
paths, one check each, with the configured used-percent thresholds (``buttress health`` included)."""

from __future__ import annotations

import json
from pathlib import Path

from buttress.config import Settings
from buttress.observe.health import default_health_registry
from tests.observe._buttress_process import run_buttress


def _settings(**observe: object) -> Settings:
    return Settings(redis_url=None, database_url=None, observe=observe)


def test_buttress_health_checks_the_configured_path_with_the_configured_thresholds(tmp_path: Path) -> None:
    done = run_buttress(
        tmp_path,
        "health",
        "--json",
        BUTTRESS_OBSERVE__DISK_PATHS=json.dumps([str(tmp_path)]),
        BUTTRESS_OBSERVE__DISK_WARN_PERCENT="0",  # any used space warns
        BUTTRESS_OBSERVE__MEMORY_WARN_PERCENT="0",
    )
    assert done.returncode == 0, done.stderr  # optional checks warn, they never fail the command
    checks = json.loads(done.stdout)["checks"]
    disk, memory = checks["disk:utilization"][0], checks["memory:utilization"][0]
    assert disk["componentId"] == str(tmp_path)
    assert disk["status"] == "warn"
    assert "warn_below=100%" in disk["output"]
    assert memory["status"] == "warn"
    assert "warn_above=0%" in memory["output"]


def test_one_disk_check_per_configured_path_and_the_fail_threshold_applies(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    registry = default_health_registry(
        _settings(disk_paths=[str(first), str(second)], disk_warn_percent=0, disk_fail_percent=0)
    )
    disks = {check.name: check.component_id for check in registry if check.name.startswith("disk")}
    assert disks == {f"disk {first}": str(first), f"disk {second}": str(second)}
    outcomes = [outcome for outcome in registry.run_sync().checks if outcome.name.startswith("disk")]
    assert [outcome.status for outcome in outcomes] == ["fail", "fail"]


def test_an_explicit_disk_path_takes_the_place_of_the_configured_ones(tmp_path: Path) -> None:
    registry = default_health_registry(_settings(disk_paths=["/"]), disk_path=str(tmp_path))
    assert [(c.name, c.component_id) for c in registry if c.name.startswith("disk")] == [
        ("disk", str(tmp_path))
    ]
