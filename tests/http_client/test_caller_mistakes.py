"""A caller's mistake is a ValidationError raised before any policy runs: nothing sent, nothing recorded.

Each bad call below used to reach the transport's policies (or the wire) and come back as an
``UpstreamError``, a raw ``TypeError``/``ValueError``/``UnicodeError``, or a 200: five of them opened the
breaker of a healthy host. Here every one is refused with the field it got wrong, a healthy upstream
receives nothing, its breaker stays closed with no failure, and the metrics do not move.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from buttress.config import HttpSettings
from buttress.errors import UpstreamError, ValidationError
from buttress.http import (
    AsyncHttpClient,
    AsyncResilientTransport,
    HttpClient,
    HttpPolicies,
    ResilientTransport,
)
from buttress.resilience import RedisState
from buttress.testing import Upstream
from tests.http_client.conftest import MakePolicies
from tests.resilience._observed import Observed

BAD_CALLS = 6  # more than the breaker's five consecutive failures

# (method, options, the field its error names), each sent to a healthy upstream
OPTION_MISTAKES: list[tuple[str, dict[str, Any], str]] = [
    ("GET", {"headers": {"X-A": "a\r\nInjected: 1"}}, "headers"),
    ("GET", {"headers": {"X-A": "a\nb"}}, "headers"),
    ("GET", {"headers": {"X-A": "a\x00b"}}, "headers"),
    ("GET", {"headers": {"X\nA": "a"}}, "headers"),
    ("GET", {"headers": {"X A": "a"}}, "headers"),
    ("GET", {"headers": {"": "a"}}, "headers"),
    ("GET", {"headers": {"X-A": "é"}}, "headers"),
    ("GET", {"headers": {"X-A": 1}}, "headers"),
    ("GET", {"headers": "X-A: 1"}, "headers"),
    ("POST", {"idempotency_key": "a\r\nb"}, "idempotency_key"),
    ("POST", {"idempotency_key": 7}, "idempotency_key"),
    ("GE T", {}, "method"),
    ("", {}, "method"),
    ("GET\r\n", {}, "method"),
    (None, {}, "method"),  # type: ignore[list-item]
    (b"GET", {}, "method"),  # type: ignore[list-item]
    ("GET", {"timeout": -1}, "timeout"),
    ("GET", {"timeout": 0}, "timeout"),
    ("GET", {"timeout": math.nan}, "timeout"),
    ("GET", {"timeout": math.inf}, "timeout"),
    ("GET", {"timeout": "5"}, "timeout"),
    ("GET", {"timeout": httpx.Timeout(5.0, read=-1.0)}, "timeout"),
    ("GET", {"deadline": math.nan}, "deadline"),
    ("GET", {"deadline": -1}, "deadline"),
    ("GET", {"retry": "yes"}, "retry"),
    ("GET", {"params": object()}, "params"),
    ("GET", {"params": 5}, "params"),
    ("POST", {"json": object()}, "json"),
    ("POST", {"json": math.nan}, "json"),
    ("POST", {"content": 5}, "content"),
    ("POST", {"files": 5}, "files"),
]

LONG_LABEL = "a" * 64
TOO_LONG_HOST = ".".join(["a" * 63] * 4)  # 255 characters: past the 253 of a DNS name

URL_MISTAKES: list[Any] = [
    "not a url",
    "example.com/path",
    "http:///path",
    "ftp://example.com/file",
    "http://a..b/",
    "http://.example.com/",
    f"http://{LONG_LABEL}.example.com/",
    f"http://{TOO_LONG_HOST}/",
    "http://a b.example.com/",
    "http://exa_mple%00.com/",
    "http://127.0.0.1:70000/",
    "http://127.0.0.1:0/",
    "http://999.1.1.1/",
    "http://[::1",
    None,
    5,
    b"http://example.com/",
]


def _ids(cases: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    return [f"{method!r}-{sorted(options.items())!r}"[:60] for method, options, _ in cases]


class Caller:
    """A sync or an async client behind one sync ``send``: the async one runs on one event loop of its own."""

    def __init__(self, kind: str, policies: HttpPolicies) -> None:
        self.client: HttpClient | AsyncHttpClient
        if kind == "sync":
            self.client, self._loop = HttpClient(policies=policies), None
        else:
            self.client, self._loop = AsyncHttpClient(policies=policies), asyncio.new_event_loop()
        self.policies = policies

    def send(self, method: Any, url: Any, **options: Any) -> httpx.Response:
        client = self.client
        if isinstance(client, HttpClient):
            return client.request(method, url, **options)
        assert self._loop is not None
        return self._loop.run_until_complete(client.request(method, url, **options))

    def close(self) -> None:
        client = self.client
        if isinstance(client, HttpClient):
            client.close()
        else:
            assert self._loop is not None
            self._loop.run_until_complete(client.aclose())
            self._loop.close()


@pytest.fixture(params=["sync", "async"])
def caller(request: pytest.FixtureRequest, make_policies: MakePolicies) -> Iterator[Caller]:
    caller = Caller(request.param, make_policies())
    yield caller
    caller.close()


def _healthy_baseline(caller: Caller, upstream: Upstream, observed: Observed) -> tuple[bytes, int]:
    """One good call, so the host has a policy, a breaker and metrics; what they say after it."""
    assert caller.send("GET", upstream.url()).status_code == 200
    return observed.registry.render_prometheus(), len(observed.events())


def _assert_nothing_recorded(
    caller: Caller, upstream: Upstream, observed: Observed, baseline: tuple[bytes, int]
) -> None:
    client = caller.client
    assert upstream.calls() == 1  # only the good call reached the server
    assert client.policies.hosts() == [upstream.host()]  # no policy for a host that was never valid
    policy = client.policies.for_host(upstream.host())
    assert policy.breaker is not None
    snapshot = policy.breaker.snapshot()
    assert (snapshot.state, snapshot.failures, snapshot.calls) == ("closed", 0, 1)
    stats = client.stats(upstream.host())[0]
    assert (stats.requests, stats.status_classes, stats.rejected) == (1, {"2xx": 1}, {})
    assert observed.registry.render_prometheus() == baseline[0]
    assert len(observed.events()) == baseline[1]
    assert caller.send("GET", upstream.url()).status_code == 200  # and the host is still served


@pytest.mark.parametrize("mistake", OPTION_MISTAKES, ids=_ids(OPTION_MISTAKES))
def test_a_bad_option_is_refused_before_any_policy(
    caller: Caller, observed: Observed, upstream: Upstream, mistake: tuple[Any, dict[str, Any], str]
) -> None:
    method, options, field = mistake
    baseline = _healthy_baseline(caller, upstream, observed)
    for _ in range(BAD_CALLS):
        with pytest.raises(ValidationError) as caught:
            caller.send(method, upstream.url(), **options)
        assert caught.value.field == field
        assert field in str(caught.value)
        assert not isinstance(caught.value, UpstreamError)
    _assert_nothing_recorded(caller, upstream, observed, baseline)


@pytest.mark.parametrize("url", URL_MISTAKES, ids=[repr(u)[:40] for u in URL_MISTAKES])
def test_a_bad_url_is_refused_before_any_policy(
    caller: Caller, observed: Observed, upstream: Upstream, url: Any
) -> None:
    baseline = _healthy_baseline(caller, upstream, observed)
    for _ in range(BAD_CALLS):
        with pytest.raises(ValidationError) as caught:
            caller.send("GET", url)
        assert caught.value.field == "url"
        assert "url" in str(caught.value).lower()
    _assert_nothing_recorded(caller, upstream, observed, baseline)


def test_a_relative_url_on_a_base_url_client_is_still_fine(
    make_policies: MakePolicies, upstream: Upstream
) -> None:
    with HttpClient(policies=make_policies(), base_url=upstream.url()) as client:
        assert client.get("/hello", timeout=httpx.Timeout(5.0), deadline=math.inf).status_code == 200
        assert client.get("/hello", timeout=2, retry=False, params={"a": 1}).status_code == 200


def test_the_transport_refuses_mistakes_in_a_plain_httpx_client(
    make_policies: MakePolicies, observed: Observed, upstream: Upstream
) -> None:
    """httpx accepts these at build time; the transport refuses them before its policies."""
    policies = make_policies()
    with httpx.Client(transport=ResilientTransport(policies=policies)) as client:
        assert client.get(upstream.url()).status_code == 200
        baseline = observed.registry.render_prometheus()
        bad: list[tuple[str, str, dict[str, Any]]] = [
            ("headers", upstream.url(), {"headers": {"X-A": "a\r\nb"}}),
            ("method", upstream.url(), {}),
            ("url", "http://a..b/", {}),
            ("url", "http://127.0.0.1:70000/", {}),
            ("timeout", upstream.url(), {"timeout": -1}),
            ("deadline", upstream.url(), {"extensions": {"buttress.deadline": -1}}),
            ("retry", upstream.url(), {"extensions": {"buttress.retry": "yes"}}),
        ]
        for field, url, options in bad:
            for _ in range(BAD_CALLS):
                with pytest.raises(ValidationError) as caught:
                    client.request("GE T" if field == "method" else "GET", url, **options)
                assert caught.value.field == field
    assert upstream.calls() == 1
    assert policies.hosts() == [upstream.host()]
    assert observed.registry.render_prometheus() == baseline

    async def main() -> None:
        async with httpx.AsyncClient(transport=AsyncResilientTransport(policies=policies)) as aclient:
            for _ in range(BAD_CALLS):
                with pytest.raises(ValidationError) as caught:
                    await aclient.get(upstream.url(), headers={"X-A": "a\nb"})
                assert caught.value.field == "headers"

    asyncio.run(main())
    assert upstream.calls() == 1
    breaker = policies.for_host(upstream.host()).breaker
    assert breaker is not None
    assert breaker.snapshot().failures == 0


class BodyBroke(Exception):
    pass


def _broken_body() -> Iterator[bytes]:
    yield b"part"
    raise BodyBroke


async def _abroken_body() -> AsyncIterator[bytes]:
    yield b"part"
    raise BodyBroke


def test_a_request_body_that_raises_is_not_the_hosts_failure(caller: Caller, upstream: Upstream) -> None:
    """The caller's generator broke, not the host: its error comes back as is; the breaker hears nothing."""
    body = _broken_body if isinstance(caller.client, HttpClient) else _abroken_body
    for _ in range(BAD_CALLS):
        with pytest.raises(BodyBroke):
            caller.send("POST", upstream.url(), content=body())
    breaker = caller.policies.for_host(upstream.host()).breaker
    assert breaker is not None
    assert (breaker.snapshot().state, breaker.snapshot().failures) == ("closed", 0)
    assert caller.send("GET", upstream.url()).status_code == 200


def test_mistakes_never_reach_the_shared_breaker(upstream: Upstream, store: RedisState) -> None:
    """With the Redis store one process's mistakes would refuse every process: they record nothing."""
    settings = HttpSettings.model_validate({"default": {"breaker": {"consecutive_failures": 2}}})
    with HttpClient(policies=HttpPolicies(settings, store=store)) as client:
        for _ in range(BAD_CALLS):
            for options in ({"headers": {"X-A": "a\r\nb"}}, {"timeout": -1}, {"params": object()}):
                with pytest.raises(ValidationError):
                    client.get(upstream.url(), **options)
            for url in ("not a url", "http://a..b/", "http://127.0.0.1:70000/"):
                with pytest.raises(ValidationError):
                    client.get(url)
    with HttpClient(policies=HttpPolicies(settings, store=store)) as other:  # another process
        assert other.get(upstream.url()).status_code == 200
        breaker = other.policies.for_host(upstream.host()).breaker
        assert breaker is not None
        assert (breaker.snapshot().state, breaker.snapshot().failures) == ("closed", 0)
    assert upstream.calls() == 1


# -- every legal DNS name is a host ----------------------------------------------------------------------

LEGAL_LONG_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 53]) + ".invalid"  # 253 characters
HOST_246 = ".".join(["x" * 60] * 4) + ".ab"


def test_the_hosts_are_as_long_as_they_say() -> None:
    assert (len(LEGAL_LONG_HOST), len(HOST_246)) == (253, 246)


@pytest.mark.parametrize(
    "host",
    [
        LEGAL_LONG_HOST,
        LEGAL_LONG_HOST + ".",  # the root's trailing dot is legal and not counted
        HOST_246,
        "under_score.example.invalid",
        "xn--mnchen-3ya.invalid",
    ],
)
def test_a_legal_dns_name_is_a_host(make_policies: MakePolicies, host: str) -> None:
    policies = make_policies({"default": {"retry": {"attempts": 1}}})
    for port in ("", ":65535"):
        policy = policies.for_host(host + port)  # the breaker's and the limiter's names are built from it
        assert policy.breaker is not None
        assert policy.breaker.name == f"http:{host}{port}"
    with HttpClient(policies=policies) as client, pytest.raises(UpstreamError) as caught:
        client.get(f"http://{host}:65535/")  # not refused: it is looked up, and does not exist
    assert caught.value.context["error"] == "ConnectError"


CONSTRUCTION_MISTAKES: list[tuple[str, Any]] = [
    *(("headers", bad) for bad in ({"X-A": "a\r\nb"}, {"X A": "a"}, {"X-A": "é"}, {"X-A": 1}, "X-A: 1")),
    *(("base_url", bad) for bad in (None, 5, "http://[::1")),
]


@pytest.mark.parametrize("client", [HttpClient, AsyncHttpClient])
@pytest.mark.parametrize(("option", "value"), CONSTRUCTION_MISTAKES)
def test_a_client_built_with_what_it_could_never_send_is_refused_at_once(
    client: type[HttpClient | AsyncHttpClient], option: str, value: Any
) -> None:
    with pytest.raises(ValidationError) as caught:
        client(settings=HttpSettings(), **{option: value})
    assert caught.value.field == option


@pytest.mark.parametrize("url", ["http://user:hunter2@a..b/x?token=hunter2", "http://[::1?token=hunter2"])
def test_a_refused_url_is_shown_without_its_secrets(make_policies: MakePolicies, url: str) -> None:
    with HttpClient(policies=make_policies()) as client, pytest.raises(ValidationError) as caught:
        client.get(url)
    assert caught.value.field == "url"
    assert "hunter2" not in str(caught.value)
