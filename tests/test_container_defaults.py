"""The process-wide container starts with buttress's own services, built lazily, closed by their owners."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import buttress.observe.health as health_module
from buttress.clock import SYSTEM_CLOCK, Clock, FakeClock
from buttress.config import Settings, get_settings, load_settings, reset_settings
from buttress.container import Container, get_container, reset_container, set_container
from buttress.events import EventBus, get_event_bus, reset_event_bus, set_event_bus
from buttress.observe.health import HealthCheck, HealthRegistry
from buttress.observe.metrics import MetricsRegistry, get_metrics, reset_metrics

DEFAULT_TYPES = (Settings, Clock, EventBus, MetricsRegistry, HealthRegistry)


@pytest.fixture(autouse=True)
def isolated_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fresh process-wide container, settings (from an empty environment), bus and metrics per test."""
    monkeypatch.chdir(tmp_path)  # no ./.env
    for name in list(os.environ):
        if name.startswith("BUTTRESS_"):
            monkeypatch.delenv(name)
    reset_container()
    reset_settings()
    reset_event_bus()
    reset_metrics()
    yield
    reset_container()
    reset_settings()
    reset_event_bus()
    reset_metrics()


def _custom_settings() -> Settings:
    return load_settings(
        env_file=None,
        environ={"BUTTRESS_APP__NAME": "custom-svc", "BUTTRESS_REDIS_URL": "redis://127.0.0.1:6379/15"},
    )


def _check_names(registry: HealthRegistry) -> set[str]:
    return {check.name for check in registry}


def test_every_default_resolves_to_what_its_module_hands_out() -> None:
    container = get_container()
    assert all(container.is_registered(t) for t in DEFAULT_TYPES)
    assert container.resolve(Settings) is get_settings()
    assert container.resolve(Clock) is SYSTEM_CLOCK
    assert container.resolve(EventBus) is get_event_bus()
    assert container.resolve(MetricsRegistry) is get_metrics()
    health = container.resolve(HealthRegistry)
    assert isinstance(health, HealthRegistry)
    assert container.resolve(HealthRegistry) is health  # a singleton
    assert health.service_id == get_settings().app.name == "buttress"
    assert _check_names(health) == {"cache", "disk", "memory"}  # no Redis or database URL configured


async def test_defaults_resolve_asynchronously_too() -> None:
    container = get_container()
    assert await container.aresolve(Settings) is get_settings()
    assert await container.aresolve(EventBus) is get_event_bus()
    health = await container.aresolve(HealthRegistry)
    assert container.resolve(HealthRegistry) is health


def test_nothing_is_built_before_it_is_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = health_module.default_health_registry

    def counting(settings: object = None) -> HealthRegistry:
        built.append(settings)
        return real(settings)  # type: ignore[arg-type]

    monkeypatch.setattr(health_module, "default_health_registry", counting)
    container = get_container()
    assert set_event_bus(None) is None  # get_event_bus() was not called
    assert built == []
    container.resolve(HealthRegistry)
    assert built == [get_settings()]


def test_importing_the_container_imports_none_of_the_defaults() -> None:
    code = (
        "import sys, buttress.container\n"
        "heavy = {'buttress.observe.health', 'buttress.observe.metrics', 'prometheus_client'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_borrowed_defaults_follow_their_getters() -> None:
    container = get_container()
    first_settings, first_bus = container.resolve(Settings), container.resolve(EventBus)
    reset_settings()
    assert container.resolve(Settings) is get_settings() is not first_settings
    mine = EventBus()
    try:
        set_event_bus(mine)
        assert container.resolve(EventBus) is mine
    finally:
        set_event_bus(first_bus)
        mine.close()
    registry = MetricsRegistry()
    reset_metrics(registry)
    assert container.resolve(MetricsRegistry) is registry


def test_closing_the_container_leaves_the_process_wide_bus_open_and_closes_its_health_registry() -> None:
    container = get_container()
    bus = container.resolve(EventBus)
    with container.scope() as scope:
        assert scope.resolve(EventBus) is bus
    assert not bus.closed  # the scope did not close it either
    health = container.resolve(HealthRegistry)
    closed: list[str] = []
    health.register(HealthCheck(name="probe", fn=lambda: None, close=lambda: closed.append("probe")))
    container.close()
    assert closed == ["probe"]  # the container's own singleton, closed once
    assert not bus.closed
    assert get_event_bus() is bus
    assert container.resolve(EventBus) is bus
    assert container.resolve(HealthRegistry) is not health  # a fresh one after close()
    container.close()
    assert closed == ["probe"]


async def test_aclose_leaves_the_process_wide_bus_open() -> None:
    container = get_container()
    bus = await container.aresolve(EventBus)
    async with container.scope() as scope:
        assert await scope.aresolve(EventBus) is bus
    await container.aclose()
    assert not bus.closed


def test_reset_container_gives_a_fresh_one_with_the_defaults() -> None:
    first = get_container()
    first.register_instance(Clock, FakeClock())
    reset_container()
    second = get_container()
    assert second is not first
    assert all(second.is_registered(t) for t in DEFAULT_TYPES)
    assert second.resolve(Clock) is SYSTEM_CLOCK  # the replacement stayed with the old container
    assert second.resolve(Settings) is get_settings()


def test_a_default_can_be_replaced_by_registering_again() -> None:
    container = get_container()
    clock = FakeClock()
    container.register_instance(Clock, clock)
    assert container.resolve(Clock) is clock
    custom = _custom_settings()
    container.register_instance(Settings, custom)
    assert container.resolve(HealthRegistry).service_id == "custom-svc"
    container.close()


def test_set_container_installs_a_container_without_defaults() -> None:
    mine = Container()
    set_container(mine)
    assert get_container() is mine
    assert not any(mine.is_registered(t) for t in DEFAULT_TYPES)


def test_overriding_settings_reaches_the_health_registry_built_during_the_override() -> None:
    container = get_container()
    real = container.resolve(HealthRegistry)
    custom = _custom_settings()
    with container.override(Settings, custom):
        assert container.resolve(Settings) is custom
        overridden = container.resolve(HealthRegistry)
        assert overridden is not real
        assert overridden.service_id == "custom-svc"
        assert _check_names(overridden) == {"redis", "cache", "disk", "memory"}  # built, not connected
        assert container.resolve(HealthRegistry) is overridden
    assert container.resolve(Settings) is get_settings()
    assert container.resolve(HealthRegistry) is real
    assert _check_names(real) == {"cache", "disk", "memory"}
    container.close()  # closes both registries (the throwaway one releases its Redis pool)
