"""HttpClient and AsyncHttpClient: errors with context, options, lifecycle, metrics, the process defaults."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from buttress.clock import FakeClock
from buttress.config import HttpSettings, reset_settings
from buttress.container import get_container
from buttress.errors import UpstreamStatusError, UpstreamTimeout, ValidationError
from buttress.http import (
    AsyncHttpClient,
    HttpClient,
    attempts_of,
    get_async_http_client,
    get_http_client,
    get_http_policies,
    reset_http,
)
from buttress.testing import Fault, Upstream
from tests.http_client.conftest import MakePolicies
from tests.resilience._observed import Observed


def test_an_error_status_raises_with_context(upstream: Upstream, make_policies: MakePolicies) -> None:
    with HttpClient(policies=make_policies()) as client, pytest.raises(UpstreamStatusError) as caught:
        client.get(upstream.url(path="/status/404?api_key=secret"))
    error = caught.value
    assert error.status_code == 404
    assert error.response is not None
    assert error.response.json()["status"] == 404  # the body was read before closing
    assert error.context == {
        "status_code": 404,
        "host": upstream.host(),
        "method": "GET",
        "url": upstream.url(path="/status/404"),
        "attempts": 1,
    }
    assert "secret" not in str(error)
    assert error.to_problem()["error_code"] == "upstream_status"


def test_raise_for_status_can_be_turned_off(upstream: Upstream, make_policies: MakePolicies) -> None:
    with HttpClient(policies=make_policies()) as client:
        assert client.get(upstream.url(path="/status/404"), raise_for_status=False).status_code == 404
    with HttpClient(policies=make_policies({"raise_for_status": False})) as client:
        assert client.get(upstream.url(path="/status/500")).status_code == 500


def test_a_read_timeout_is_an_upstream_timeout(upstream: Upstream, make_policies: MakePolicies) -> None:
    upstream.set_fault("default", Fault(hang=1.0))
    policies = make_policies({"default": {"timeout": {"read": 0.2}, "retry": {"attempts": 2}}})
    with HttpClient(policies=policies) as client, pytest.raises(UpstreamTimeout) as caught:
        client.get(upstream.url())
    assert caught.value.context["attempts"] == 2
    assert caught.value.context["error"] == "ReadTimeout"
    assert upstream.calls() == 2


def test_bad_urls_and_options_name_the_field(make_policies: MakePolicies) -> None:
    with HttpClient(policies=make_policies()) as client:
        for url in ("ftp://example.com/file", "http://[::1"):
            with pytest.raises(ValidationError) as caught:
                client.get(url)
            assert caught.value.field == "url"
        for deadline in (0, -1, True, "5"):
            with pytest.raises(ValidationError) as caught:
                client.get("http://127.0.0.1:1/", deadline=deadline)  # type: ignore[arg-type]
            assert caught.value.field == "deadline"


def test_the_client_sends_its_headers_and_base_url(upstream: Upstream, make_policies: MakePolicies) -> None:
    with HttpClient(policies=make_policies(), base_url=upstream.url(), headers={"X-App": "demo"}) as client:
        response = client.get("/hello", params={"q": "1"})
        assert response.json()["path"] == "/hello"
        assert response.request.headers["x-app"] == "demo"
        assert response.request.headers["user-agent"].startswith("buttress")
        for method in ("head", "options", "put", "patch", "delete"):
            assert getattr(client, method)("/m").status_code == 200
        with client.stream("GET", "/bytes/1000") as streamed:
            assert sum(len(chunk) for chunk in streamed.iter_bytes()) == 1000
        assert "HttpClient" in repr(client)
        assert not client.is_closed
    assert client.is_closed
    with HttpClient(policies=make_policies({"user_agent": "myapp/1.2"})) as client:
        assert client.get(upstream.url()).request.headers["user-agent"] == "myapp/1.2"


def test_metrics_per_host(upstream: Upstream, make_policies: MakePolicies, observed: Observed) -> None:
    upstream.add("api")
    with HttpClient(policies=make_policies(), raise_for_status=False) as client:
        for _ in range(3):
            client.get(upstream.url())
        client.get(upstream.url("api", "/status/404"))
    series = observed.metric("buttress_http_requests_total")
    counts = {(s["labels"]["host"], s["labels"]["status_class"]): s["value"] for s in series}
    assert counts == {(upstream.host(), "2xx"): 3.0, (upstream.host("api"), "4xx"): 1.0}
    durations = observed.metric("buttress_http_request_duration_seconds")
    by_host = {s["labels"]["host"]: s for s in durations}
    assert set(by_host) == {upstream.host(), upstream.host("api")}
    in_flight = {s["labels"]["host"]: s["value"] for s in observed.metric("buttress_http_in_flight")}
    assert in_flight == {upstream.host(): 0.0, upstream.host("api"): 0.0}  # every slot went back


def test_hosts_past_max_hosts_share_one_label(
    upstream: Upstream, make_policies: MakePolicies, observed: Observed
) -> None:
    for name in ("b", "c"):
        upstream.add(name)
    with HttpClient(policies=make_policies({"max_hosts": 1})) as client:
        for name in ("default", "b", "c"):
            client.get(upstream.url(name))
        assert len(client.stats()) == 3  # each host still has its own breaker and counts
    hosts = {s["labels"]["host"]: s["value"] for s in observed.metric("buttress_http_requests_total")}
    assert hosts == {upstream.host(): 1.0, "other": 2.0}


def test_async_client_retries_and_raises_like_the_sync_one(
    upstream: Upstream, make_policies: MakePolicies, clock: FakeClock
) -> None:
    async def main() -> None:
        async with AsyncHttpClient(policies=make_policies()) as client:
            assert "AsyncHttpClient" in repr(client)
            with pytest.raises(UpstreamStatusError) as caught:
                await client.get(upstream.url(path="/status/503"))
            assert caught.value.context["attempts"] == 3
            response = await client.post(upstream.url(path="/status/503"), json={}, raise_for_status=False)
            assert attempts_of(response) == 1
            for method in ("head", "options", "put", "patch", "delete"):
                assert (await getattr(client, method)(upstream.url())).status_code == 200
            async with client.stream("GET", upstream.url(path="/bytes/2048")) as streamed:
                assert len(await streamed.aread()) == 2048
            with pytest.raises(ValidationError):
                await client.get("ftp://example.com/")
        assert client.is_closed

    asyncio.run(main())
    assert upstream.calls(path="/status/503") == 4
    assert len(clock.sleeps) == 2


def test_fifty_concurrent_async_requests(upstream: Upstream, make_policies: MakePolicies) -> None:
    async def main() -> list[int]:
        async with AsyncHttpClient(policies=make_policies()) as client:
            responses = await asyncio.gather(*(client.get(upstream.url(path=f"/{n}")) for n in range(50)))
            return [r.status_code for r in responses]

    assert asyncio.run(main()) == [200] * 50
    assert upstream.calls() == 50


def test_the_process_defaults_share_one_policy_table(isolated_settings: None, upstream: Upstream) -> None:
    reset_http()
    try:
        client = get_http_client()
        assert get_http_client() is client
        assert get_container().resolve(HttpClient) is client
        assert client.policies is get_http_policies()
        assert client.get(upstream.url()).status_code == 200

        async def main() -> None:
            aclient = get_async_http_client()
            assert get_async_http_client() is aclient
            assert get_container().resolve(AsyncHttpClient) is aclient
            assert aclient.policies is client.policies  # sync and async agree about each host
            assert (await aclient.get(upstream.url())).status_code == 200
            await aclient.aclose()

        asyncio.run(main())
        assert client.stats()[0].requests == 2
        client.close()
        assert get_http_client() is not client  # a closed default is replaced
    finally:
        reset_http()
        reset_settings()


def test_settings_build_policies_for_a_client(upstream: Upstream) -> None:
    settings = HttpSettings.model_validate({"default": {"retry": {"attempts": 1}}})
    upstream.set_fault("default", Fault(errors={503: 1.0}))
    with HttpClient(settings=settings, raise_for_status=False) as client:
        client.get(upstream.url())
    assert upstream.calls() == 1


def test_a_given_inner_transport_is_used(upstream: Upstream, make_policies: MakePolicies) -> None:
    inner = httpx.HTTPTransport(retries=0)
    with HttpClient(policies=make_policies(), transport=inner) as client:
        assert client.get(upstream.url()).status_code == 200


def test_the_limiter_metrics_name_the_host_once(
    upstream: Upstream, make_policies: MakePolicies, observed: Observed
) -> None:
    policies = make_policies({"default": {"limiter": {"rate": "100/s", "burst": 5}}})
    with HttpClient(policies=policies) as client:
        client.get(upstream.url())
    text = observed.registry.render_prometheus().decode()
    host = upstream.host()
    assert f'buttress_resilience_limiter_available_tokens{{key="http:{host}"}} 4.0' in text
    admitted = f'buttress_resilience_calls_total{{key="http:{host}",outcome="admitted",strategy="limiter"}}'
    assert admitted in text
    assert f"{host}:{host}" not in text
