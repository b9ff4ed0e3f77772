"""The pytest fixtures users get: ``upstream`` and ``upstream_factory``."""

from __future__ import annotations

import httpx

from buttress.testing import Fault, Upstream
from buttress.testing.pytest_plugin import UpstreamFactory


def test_upstream_fixture_is_running_with_a_default_domain(upstream: Upstream, client: httpx.Client) -> None:
    assert upstream.running
    assert [d.name for d in upstream.domains] == ["default"]
    assert client.get(upstream.url(path="/ping")).json()["domain"] == "default"
    assert upstream.calls() == 1


def test_upstream_fixture_takes_more_domains(upstream: Upstream, client: httpx.Client) -> None:
    upstream.add("flaky", Fault(errors={503: 1.0}))
    assert client.get(upstream.url("flaky")).status_code == 503
    assert client.get(upstream.url()).status_code == 200


def test_factory_starts_each_upstream_and_stops_them_all(upstream_factory: UpstreamFactory) -> None:
    first = upstream_factory()
    second = upstream_factory(seed=7)
    assert first.running
    assert second.running
    assert second.seed == 7
    assert first.port() != second.port()


def test_the_plugin_is_registered_for_users() -> None:
    from importlib.metadata import entry_points

    [plugin] = [ep for ep in entry_points(group="pytest11") if ep.name == "buttress"]
    assert plugin.value == "buttress.testing.pytest_plugin"
