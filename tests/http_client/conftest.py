"""Fixtures for the HTTP client tests: a fake clock, private metrics and events, policies from a dict."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.config import HttpSettings
from buttress.http import HttpPolicies
from buttress.resilience import RedisState
from tests.resilience._observed import Observed

MakePolicies = Callable[..., HttpPolicies]


@pytest.fixture
def observed() -> Iterator[Observed]:
    observed = Observed("http.**", "resilience.**")
    yield observed
    observed.bus.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_policies(clock: FakeClock, observed: Observed) -> MakePolicies:
    """``make_policies({"default": {...}, "policies": {...}})``: memory state, fake clock, own telemetry."""

    def make(config: dict[str, Any] | None = None, **options: Any) -> HttpPolicies:
        settings = HttpSettings.model_validate(config or {})
        return HttpPolicies(
            settings,
            store="memory",
            clock=options.get("clock", clock),
            metrics=observed.registry,
            events=observed.bus,
        )

    return make


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisState]:
    """A Redis store of its own for host state (as every process of a service would share)."""
    state = RedisState(redis_url, prefix=f"test-http-{uuid.uuid4().hex[:8]}")
    yield state
    state.close()
