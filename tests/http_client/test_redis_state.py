"""Host state in Redis: two clients (as two processes would) share each host's breaker and limiter."""

from __future__ import annotations

import asyncio

import pytest

from buttress.config import HttpSettings
from buttress.errors import CircuitOpen
from buttress.http import AsyncHttpClient, HttpClient, HttpPolicies
from buttress.resilience import RedisState
from buttress.testing import Fault, Upstream

SETTINGS = HttpSettings.model_validate(
    {"default": {"retry": {"attempts": 2, "initial_delay": 0.01}, "breaker": {"consecutive_failures": 3}}}
)


def test_a_breaker_tripped_by_one_client_refuses_the_other(upstream: Upstream, store: RedisState) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    first = HttpPolicies(SETTINGS, store=store)
    second = HttpPolicies(SETTINGS, store=store)  # another process would build its own table
    with HttpClient(policies=first, raise_for_status=False) as one, HttpClient(policies=second) as two:
        one.get(upstream.url())  # 2 attempts
        one.get(upstream.url())  # the third failure opens the shared breaker
        with pytest.raises(CircuitOpen):
            two.get(upstream.url())
    assert upstream.calls() == 3


def test_the_async_client_uses_the_redis_state_too(upstream: Upstream, store: RedisState) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    settings = SETTINGS.model_copy(
        update={
            "default": SETTINGS.default.model_copy(
                update={"limiter": SETTINGS.default.limiter.model_copy(update={"rate": "1000/s"})}
            )
        }
    )

    async def main() -> None:
        async with AsyncHttpClient(
            policies=HttpPolicies(settings, store=store), raise_for_status=False
        ) as client:
            response = await client.get(upstream.url())
            assert response.status_code == 503
            await client.get(upstream.url())
            with pytest.raises(CircuitOpen):
                await client.get(upstream.url())
        async with AsyncHttpClient(policies=HttpPolicies(settings, store=store)) as other:
            with pytest.raises(CircuitOpen):
                await other.get(upstream.url())
        await store.aclose()  # its async connections belong to this loop

    asyncio.run(main())
    assert upstream.calls() == 3
