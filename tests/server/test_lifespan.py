"""install(): the user's lifespan keeps running inside buttress's; the sampler and profiler follow it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI

from buttress.errors import ConflictError, ValidationError
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from buttress.observe.profiler import Profiler
from buttress.observe.system import SystemSampler
from buttress.server import install

from .conftest import build, client_for, make_settings


def _install(app: FastAPI, **kwargs: Any) -> Any:
    defaults: dict[str, Any] = {
        "health": HealthRegistry(),
        "metrics": MetricsRegistry(),
        "errors": ErrorAggregator(),
        "profiler": Profiler(),
        "sampler": SystemSampler(3600.0),
    }
    settings = kwargs.pop("settings", None) or make_settings()
    return install(app, settings, **{**defaults, **kwargs})


async def test_the_users_lifespan_still_runs_inside_buttress() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append(f"user startup, sampler running={ops.sampler.running}")
        yield {"db": "connection"}
        events.append(f"user shutdown, sampler running={ops.sampler.running}")

    app = FastAPI(lifespan=lifespan)
    ops = _install(app)
    async with app.router.lifespan_context(app) as state:
        events.append("serving")
        assert state == {"db": "connection"}  # the state the user's lifespan yields reaches requests
    assert events == [
        "user startup, sampler running=True",
        "serving",
        "user shutdown, sampler running=True",
    ]
    assert not ops.sampler.running


async def test_an_app_without_a_lifespan_gets_one() -> None:
    app = FastAPI()
    ops = _install(app)
    async with app.router.lifespan_context(app):
        assert ops.sampler.running
    assert not ops.sampler.running


async def test_buttress_stops_even_when_the_users_startup_fails() -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("cannot connect")
        yield

    app = FastAPI(lifespan=lifespan)
    ops = _install(app)
    with pytest.raises(RuntimeError, match="cannot connect"):
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover
    assert not ops.sampler.running


async def test_the_profiler_starts_with_the_app_when_configured() -> None:
    app = FastAPI()
    profiler = Profiler()
    _install(app, profiler=profiler, settings=make_settings(observe={"profiler_enabled": True}))
    async with app.router.lifespan_context(app):
        assert profiler.enabled
    assert not profiler.enabled


async def test_a_profiler_already_running_is_left_running() -> None:
    app = FastAPI()
    profiler = Profiler(enabled=True)
    _install(app, profiler=profiler, settings=make_settings(observe={"profiler_enabled": True}))
    async with app.router.lifespan_context(app):
        pass
    assert profiler.enabled


async def test_the_profiler_stays_off_by_default() -> None:
    app = FastAPI()
    profiler = Profiler()
    _install(app, profiler=profiler)
    async with app.router.lifespan_context(app):
        assert not profiler.enabled


async def test_startup_time_is_recorded_when_the_lifespan_starts() -> None:
    built = build()
    built.clock.advance(100)
    async with built.app.router.lifespan_context(built.app):
        assert built.ops.started_at == 1_700_000_100.0
        gauge = built.metrics.get("buttress_server_start_time_seconds")
        assert gauge is not None
        assert gauge.value == 1_700_000_100.0
        built.clock.advance(5)
        async with client_for(built.app) as client:
            info = (await client.get("/info")).json()
        assert info["uptime_seconds"] == 5.0


async def test_a_health_registry_buttress_built_is_closed_at_shutdown() -> None:
    closed: list[str] = []
    built = build(default_health=True)
    check = built.ops.health.get("system")
    assert check is not None
    built.ops.health.remove("system")
    built.ops.health.register(
        type(check)(name="system", fn=check.fn, critical=False, close=lambda: closed.append("system"))
    )
    async with built.app.router.lifespan_context(built.app):
        pass
    assert closed == ["system"]


async def test_a_health_registry_passed_in_is_left_open() -> None:
    closed: list[str] = []
    health = HealthRegistry()
    health.add("x", lambda: True)
    health.register(type(health.get("x"))(name="y", fn=lambda: True, close=lambda: closed.append("y")))  # type: ignore[misc]
    built = build(health=health)
    async with built.app.router.lifespan_context(built.app):
        pass
    assert closed == []


def test_install_twice_is_refused() -> None:
    app = FastAPI()
    _install(app)
    with pytest.raises(ConflictError, match="already installed"):
        _install(app)


@pytest.mark.parametrize("prefix", ["ops", "/ops/", "/"])
def test_a_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="prefix"):
        _install(FastAPI(), prefix=prefix)


async def test_install_returns_the_state_and_keeps_user_routes() -> None:
    app = FastAPI()

    @app.get("/orders")
    def orders() -> list[int]:
        return [1, 2]

    ops = _install(app)
    assert app.state.buttress is ops
    assert ops.prefix == "/ops"
    async with client_for(app) as client:
        assert (await client.get("/orders")).json() == [1, 2]
        assert (await client.get("/ops/health/live")).status_code == 200
        assert (await client.get("/ops/metrics")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
    assert {"/orders", "/ops/health/live", "/ops/metrics", "/ops/info"} <= set(schema["paths"])
    assert "Problem" in schema["components"]["schemas"]
