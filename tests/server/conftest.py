"""Fixtures for the ops server tests: apps with their own registries, and HTTP clients against them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from buttress.clock import FakeClock
from buttress.config import Settings
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from buttress.observe.profiler import Profiler
from buttress.observe.system import SystemSampler
from buttress.server import Ops, create_app, install

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
JWT_KEY = "test-jwt-key-0123456789abcdef-0123456789abcdef"  # 46 bytes: long enough for HS256 and HS384


@pytest.fixture(autouse=True)
def _isolated(isolated_settings: None) -> None:
    """Settings come from each test alone: no BUTTRESS_* variables, no .env in the working directory."""


def make_settings(**sections: Any) -> Settings:
    return Settings(_env_file=None, **sections)


@dataclass
class Built:
    """An app and the objects it reports on, each private to the test."""

    app: FastAPI
    ops: Ops
    health: HealthRegistry
    metrics: MetricsRegistry
    errors: ErrorAggregator
    profiler: Profiler
    clock: FakeClock


def build(
    *,
    admin_token: str | None = None,
    jwt: dict[str, Any] | None = None,
    expose_details: bool = False,
    health: HealthRegistry | None = None,
    sampler: SystemSampler | None = None,
    settings: Settings | None = None,
    clock: FakeClock | None = None,
    default_health: bool = False,
    **app_settings: Any,
) -> Built:
    clock = clock or FakeClock()
    if settings is None:
        server = {"expose_details": expose_details, **(jwt or {})}
        security = {"admin_token": admin_token} if admin_token else {}
        settings = make_settings(server=server, security=security, **app_settings)
    if health is None and not default_health:
        health = HealthRegistry(clock=clock)
    metrics = MetricsRegistry(clock=clock)
    errors = ErrorAggregator(clock=clock)
    profiler = Profiler()
    app = create_app(
        settings,
        health=health,
        metrics=metrics,
        errors=errors,
        profiler=profiler,
        sampler=sampler,
        clock=clock,
    )
    ops = app.state.buttress
    return Built(app, ops, ops.health, metrics, errors, profiler, clock)


def install_isolated(app: FastAPI, settings: Settings | None = None) -> Ops:
    """install() into ``app`` (routes under /ops) on registries of its own, a sampler that waits an hour."""
    return install(
        app,
        settings if settings is not None else make_settings(),
        health=HealthRegistry(),
        metrics=MetricsRegistry(),
        errors=ErrorAggregator(),
        sampler=SystemSampler(3600.0),
    )


def client_for(app: FastAPI, **kwargs: Any) -> httpx.AsyncClient:
    # raise_app_exceptions=False: a 500 is the answer under test, not an error of the test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://ops.test", **kwargs)


@pytest.fixture
async def built() -> Built:
    return build()


@pytest.fixture
async def client(built: Built) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(built.app) as http:
        yield http


Bearer = Callable[[str], dict[str, str]]


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}
