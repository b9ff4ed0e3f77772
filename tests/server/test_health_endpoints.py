"""Health endpoints: health+json documents, 200 on pass/warn, 503 on a critical failure, groups."""

from __future__ import annotations

import pytest

from buttress.config import Settings
from buttress.observe.health import HEALTH_CONTENT_TYPE, CheckResult, HealthRegistry
from buttress.server import PROBLEM_CONTENT_TYPE
from buttress.server._ops import default_sampler, ops_health_registry

from .conftest import build, client_for, make_settings


def _registry() -> HealthRegistry:
    return HealthRegistry()


async def test_liveness_with_no_checks_passes_as_health_json() -> None:
    built = build()
    async with client_for(built.app) as client:
        response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.headers["content-type"] == HEALTH_CONTENT_TYPE
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"status": "pass", "checks": {}}


async def test_a_failing_critical_check_makes_readiness_503() -> None:
    health = _registry()
    health.add("ok", lambda: True)

    def database() -> None:
        raise ConnectionRefusedError("connection refused by 10.0.0.5:5432")

    health.add("database", database)
    built = build(health=health)
    async with client_for(built.app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == HEALTH_CONTENT_TYPE
    body = response.json()
    assert body["status"] == "fail"
    assert body["output"] == "fail: database"
    assert body["checks"]["database"][0]["status"] == "fail"
    assert "ConnectionRefusedError" in body["checks"]["database"][0]["output"]
    assert body["checks"]["ok"][0]["status"] == "pass"


async def test_a_failing_optional_check_only_warns_with_200() -> None:
    health = _registry()
    health.add("cache", lambda: CheckResult("fail", "cache down"), critical=False)
    built = build(health=health)
    async with client_for(built.app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "warn"


async def test_liveness_runs_only_liveness_checks() -> None:
    health = _registry()
    health.add("database", lambda: False)  # readiness, failing
    health.add("loop", lambda: True, groups="liveness")
    built = build(health=health)
    async with client_for(built.app) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
        everything = await client.get("/health")
    assert live.status_code == 200
    assert list(live.json()["checks"]) == ["loop"]
    assert ready.status_code == 503
    assert list(ready.json()["checks"]) == ["database"]
    assert everything.status_code == 503
    assert set(everything.json()["checks"]) == {"database", "loop"}


async def test_custom_and_standard_groups_by_name() -> None:
    health = _registry()
    health.add("migrations", lambda: CheckResult("warn", "2 pending"), groups=("startup", "deploy"))
    health.add("database", lambda: False)
    built = build(health=health)
    async with client_for(built.app) as client:
        deploy = await client.get("/health/deploy")
        startup = await client.get("/health/startup")
        readiness = await client.get("/health/readiness")
    assert deploy.status_code == 200
    assert deploy.json()["status"] == "warn"
    assert list(deploy.json()["checks"]) == ["migrations"]
    assert startup.json()["checks"].keys() == {"migrations"}
    assert readiness.status_code == 503


async def test_an_unknown_group_is_a_404_problem() -> None:
    built = build()
    async with client_for(built.app) as client:
        response = await client.get("/health/redyness")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    problem = response.json()
    assert problem["error_code"] == "not_found"
    assert "redyness" in problem["detail"]
    assert "readiness" in problem["detail"]  # the known groups are listed


async def test_a_hanging_check_fails_by_its_timeout_not_the_probe() -> None:
    import asyncio

    health = _registry()

    async def hangs() -> None:
        await asyncio.Event().wait()

    health.add("upstream", hangs, timeout=0.05)
    built = build(health=health)
    async with client_for(built.app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["upstream"][0]["output"] == "timed out after 0.05s"


def test_default_registry_uses_the_sampler_instead_of_disk_and_memory() -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:6379/0")
    sampler = default_sampler(settings)
    registry = ops_health_registry(settings, sampler, clock=sampler.clock)
    names = {check.name for check in registry}
    assert names == {"redis", "cache", "system"}
    system = registry.get("system")
    assert system is not None
    assert not system.critical


def test_the_sampler_replaces_one_disk_check_per_configured_path_too() -> None:
    settings = Settings(_env_file=None, observe={"disk_paths": ["/", "/tmp"]})
    sampler = default_sampler(settings)
    names = {check.name for check in ops_health_registry(settings, sampler, clock=sampler.clock)}
    assert "system" in names
    assert not [name for name in names if name.startswith("disk") or name == "memory"]


def test_default_sampler_follows_the_observe_settings() -> None:
    settings = Settings(
        _env_file=None,
        observe={
            "sampler_interval": 2.5,
            "disk_paths": ["/", "/tmp"],
            "memory_warn_percent": 70,
            "memory_fail_percent": 80,
            "disk_warn_percent": 60,
            "disk_fail_percent": 65,
        },
    )
    sampler = default_sampler(settings)
    assert sampler.interval == 2.5
    assert sampler.paths == ("/", "/tmp")
    thresholds = sampler.thresholds
    assert (thresholds.memory_warn, thresholds.memory_fail) == (70, 80)
    assert (thresholds.disk_warn, thresholds.disk_fail) == (60, 65)


async def test_default_registry_answers_through_the_app() -> None:
    built = build(default_health=True)
    async with client_for(built.app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200  # system is optional: at worst it warns
    assert list(response.json()["checks"]) == ["cache", "system"]


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready", "/health/startup"])
async def test_every_probe_answers_health_json(path: str) -> None:
    built = build()
    async with client_for(built.app) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == HEALTH_CONTENT_TYPE
