"""The budget conformance suite (tests/conformance/test_budget_conformance.py) on a real Redis Cluster.

Its Redis cases run unchanged: tests/cluster/conftest.py points ``redis_url`` at the session's cluster.
Only the store fixture differs: the cluster is the session's own, so its keys are not cleaned up one by one.
"""

import uuid
from collections.abc import AsyncIterator

import pytest

from buttress.clock import FakeClock
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import RedisState
from tests.conformance.test_budget_conformance import *  # noqa: F403


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[str | RedisState]:
    if request.param == "memory":
        yield "memory"
        return
    url = request.getfixturevalue("redis_url")
    state = RedisState(url, prefix=f"test-budget-{uuid.uuid4().hex}", clock=clock, metrics=MetricsRegistry())
    yield state
    await state.aclose()
