"""The policies as an httpx transport inside plain httpx clients (what an SDK taking an httpx client gets)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from buttress.clock import FakeClock
from buttress.config import HttpSettings
from buttress.errors import CircuitOpen
from buttress.http import AsyncResilientTransport, ResilientTransport, attempts_of
from buttress.testing import Fault, Upstream
from tests.http_client.conftest import MakePolicies


def test_a_plain_httpx_client_gets_retries(
    upstream: Upstream, make_policies: MakePolicies, clock: FakeClock
) -> None:
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    with httpx.Client(transport=ResilientTransport(policies=make_policies())) as client:
        response = client.get(upstream.url(path="/models"))
    assert response.status_code == 503  # a transport returns answers; raising is the client's business
    assert attempts_of(response) == 3
    assert upstream.calls() == 3
    assert len(clock.sleeps) == 2


def test_a_plain_httpx_client_gets_the_breaker(upstream: Upstream, make_policies: MakePolicies) -> None:
    upstream.set_fault("default", Fault(errors={500: 1.0}))
    policies = make_policies({"default": {"retry": {"attempts": 1}}})
    with httpx.Client(transport=ResilientTransport(policies=policies)) as client:
        for _ in range(5):
            client.get(upstream.url())
        with pytest.raises(CircuitOpen):
            client.get(upstream.url())
    assert upstream.calls() == 5


def test_transport_errors_stay_httpx_errors_with_a_note(
    upstream: Upstream, make_policies: MakePolicies
) -> None:
    upstream.set_down("default", down=True)
    with (
        httpx.Client(transport=ResilientTransport(policies=make_policies())) as client,
        pytest.raises(httpx.ConnectError) as caught,
    ):
        client.get(upstream.url())
    assert attempts_of(caught.value) == 3
    assert any("failed after 3 attempt(s)" in note for note in caught.value.__notes__)


def test_the_client_timeout_is_kept_when_tighter(upstream: Upstream, make_policies: MakePolicies) -> None:
    upstream.set_fault("default", Fault(hang=1.0))
    policies = make_policies({"default": {"retry": {"attempts": 1}}})
    with (
        httpx.Client(transport=ResilientTransport(policies=policies), timeout=0.2) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get(upstream.url())


def test_an_async_httpx_client_gets_the_policies(upstream: Upstream, make_policies: MakePolicies) -> None:
    upstream.add("flaky", Fault(errors={503: 0.5}))
    policies = make_policies({"default": {"retry": {"budget_ratio": None}, "breaker": {"enabled": False}}})

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=AsyncResilientTransport(policies=policies)) as client:
            return await asyncio.gather(*(client.get(upstream.url("flaky", f"/{n}")) for n in range(50)))

    responses = asyncio.run(main())
    assert upstream.calls("flaky") == sum(attempts_of(r) or 0 for r in responses) > 50
    assert sum(r.status_code == 200 for r in responses) >= 40


def test_the_default_transport_builds_its_own_pool_from_settings(upstream: Upstream) -> None:
    transport = ResilientTransport(settings=HttpSettings(max_connections=3))
    with httpx.Client(transport=transport) as client:
        assert client.get(upstream.url()).status_code == 200
    assert "HttpPolicies" in repr(transport)
    assert transport.policies.settings.max_connections == 3


def test_the_default_async_transport_too(upstream: Upstream) -> None:
    async def main() -> int:
        transport = AsyncResilientTransport(settings=HttpSettings())
        assert "AsyncResilientTransport" in repr(transport)
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get(upstream.url())).status_code

    assert asyncio.run(main()) == 200


class _Cached(httpx.BaseTransport):
    """An inner transport that answers from memory, as a caching layer does: the body is already read."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"cached", request=request)


def test_an_answer_read_in_full_by_the_inner_transport_frees_its_slot(make_policies: MakePolicies) -> None:
    policies = make_policies({"default": {"bulkhead": {"max_concurrent": 2, "max_queued": 0}}})
    with httpx.Client(transport=ResilientTransport(_Cached(), policies=policies)) as client:
        for _ in range(5):
            assert client.get("http://cache.local/x").content == b"cached"
    [stats] = policies.stats()
    assert stats.in_flight == 0
    assert stats.requests == 5
