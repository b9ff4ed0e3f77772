"""The upstream end to end through httpx, in thread mode and in process mode (the same tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from buttress.testing import Fault, Upstream

Unique = Callable[[str], str]


def test_echo_counts_and_headers(served: Upstream, unique: Unique, client: httpx.Client) -> None:
    name = served.add(unique("echo")).name
    first = client.get(served.url(name, "/items/1?page=2"), headers={"Idempotency-Key": "key-1"})
    second = client.post(served.url(name, "/items/1"), content=b"x" * 1234)
    client.put(served.url(name, "/other"), content=b"")
    assert first.status_code == 200
    assert first.json() == {"domain": name, "path": "/items/1", "method": "GET", "n": 0, "body_bytes": 0}
    assert first.headers["idempotency-key"] == "key-1"
    assert first.headers["x-upstream-request"] == "0"
    assert "idempotency-key" not in second.headers
    assert second.json()["n"] == 1
    assert second.json()["body_bytes"] == 1234
    assert served.calls(name) == 3
    assert served.calls(name, "/items/1") == 2
    assert served.calls(name, "/items/1?ignored=yes") == 2
    assert served.calls(name, "/never") == 0
    assert served.counts()[name] == {"/items/1": 2, "/other": 1}
    assert served.outcomes(name) == {"200": 3}


def test_domains_set_before_start_are_served(served: Upstream, client: httpx.Client) -> None:
    assert [d.name for d in served.domains][:2] == ["default", "preset"]
    assert client.get(served.url("preset", "/x")).status_code == 203
    assert client.get(served.url("preset", "/teapot/1")).json() == {"error": "injected", "status": 418}
    assert client.get(served.url(path="/x")).status_code == 200


def test_keep_alive_reuses_one_connection(served: Upstream, unique: Unique, client: httpx.Client) -> None:
    name = served.add(unique("alive")).name
    statuses = {client.get(served.url(name, f"/n/{i}")).status_code for i in range(100)}
    assert statuses == {200}
    assert served.calls(name) == 100
    assert served.connections(name) == 1


def test_connection_close_is_honoured(served: Upstream, unique: Unique, client: httpx.Client) -> None:
    name = served.add(unique("close")).name
    for _ in range(3):
        response = client.get(served.url(name), headers={"Connection": "close"})
        assert response.headers["connection"] == "close"
    assert served.connections(name) == 3


def test_same_seed_same_fates_in_both_modes(process_upstream: Upstream, unique: Unique) -> None:
    name = unique("fates")
    process_upstream.add(name, Fault(errors={503: 0.3, 500: 0.1}))
    with Upstream(seed=0) as local, httpx.Client(timeout=5.0) as client:
        local.add(name, Fault(errors={503: 0.3, 500: 0.1}))
        in_thread = [client.get(local.url(name, "/x")).status_code for _ in range(150)]
        in_process = [client.get(process_upstream.url(name, "/x")).status_code for _ in range(150)]
    assert in_thread == in_process
    assert {200, 500, 503} == set(in_thread)


def test_down_and_up_at_run_time_on_the_same_port(
    served: Upstream, unique: Unique, client: httpx.Client
) -> None:
    name = served.add(unique("toggle")).name
    url = served.url(name, "/x")
    assert client.get(url).status_code == 200
    served.set_down(name)
    assert served.domain(name).down
    with pytest.raises(httpx.ConnectError):
        client.get(url)
    served.set_down(name, down=False)
    assert served.url(name, "/x") == url
    assert client.get(url).status_code == 200
    assert served.calls(name) == 2


def test_dead_domain_refuses_until_brought_up(served: Upstream, unique: Unique, client: httpx.Client) -> None:
    name = served.add(unique("dead"), Fault(down=True)).name
    with pytest.raises(httpx.ConnectError):
        client.get(served.url(name))
    served.set_fault(name, Fault())
    assert client.get(served.url(name)).status_code == 200


def test_set_fault_and_route_at_run_time(served: Upstream, unique: Unique, client: httpx.Client) -> None:
    name = served.add(unique("change")).name
    served.route(name, "/broken", Fault(errors={500: 1.0}))
    assert client.get(served.url(name, "/broken/deep")).status_code == 500
    assert client.get(served.url(name, "/broken")).status_code == 500
    assert client.get(served.url(name, "/brokenness")).status_code == 200
    served.set_fault(name, Fault(status=202))
    served.set_fault(name, Fault(errors={502: 1.0}), path="/broken")
    assert client.get(served.url(name, "/fine")).status_code == 202
    assert client.get(served.url(name, "/broken")).status_code == 502
    assert served.domain(name).routes == (("/broken", Fault(errors={502: 1.0})),)
    assert served.outcomes(name) == {"500": 2, "200": 1, "202": 1, "502": 1}


def test_reset_counts(served: Upstream, unique: Unique, client: httpx.Client) -> None:
    name = served.add(unique("reset-counts")).name
    client.get(served.url(name, "/a"))
    served.reset_counts()
    assert served.calls(name) == 0
    assert served.outcomes(name) == {}
    assert served.connections(name) == 0
    response = client.get(served.url(name, "/a"))
    assert response.json()["n"] == 0
    assert served.calls(name, "/a") == 1


def test_connection_reset_and_hang(served: Upstream, unique: Unique, client: httpx.Client) -> None:
    name = served.add(unique("rude")).name
    served.route(name, "/reset", Fault(reset=1.0))
    served.route(name, "/hang", Fault(hang=1.0))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(served.url(name, "/reset"))
    with pytest.raises(httpx.ReadTimeout):
        client.get(served.url(name, "/hang"), timeout=0.2)
    assert client.get(served.url(name, "/fine")).status_code == 200
    assert served.outcomes(name) == {"reset": 1, "hang": 1, "200": 1}


def test_bytes_and_status_routes(served: Upstream, unique: Unique, client: httpx.Client) -> None:
    name = served.add(unique("routes")).name
    small = client.get(served.url(name, "/bytes/20"))
    assert small.content == b"buttressbuttressbutt"
    assert small.headers["content-type"] == "application/octet-stream"
    large = client.get(served.url(name, "/bytes/300001"))
    assert large.headers["content-length"] == "300001"
    assert large.content == (b"buttress" * 37501)[:300001]
    missing = client.get(served.url(name, "/status/404"))
    assert missing.status_code == 404
    assert missing.json() == {"domain": name, "path": "/status/404", "status": 404}
    assert client.post(served.url(name, "/status/500")).status_code == 500
    assert served.outcomes(name) == {"200": 2, "404": 1, "500": 1}


async def test_fifty_concurrent_requests(served: Upstream, unique: Unique) -> None:
    name = served.add(unique("busy"), Fault(latency=0.2)).name
    async with httpx.AsyncClient(timeout=10.0) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(*(client.get(served.url(name, f"/r/{i}")) for i in range(50)))
        elapsed = time.perf_counter() - started
    assert [r.status_code for r in responses] == [200] * 50
    assert served.calls(name) == 50
    assert served.connections(name) > 1
    assert 0.2 <= elapsed < 5.0  # one after the other would take 10 s
