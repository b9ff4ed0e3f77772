"""The generated reference pages match the code, and the hand-kept events table matches the source."""

from __future__ import annotations

import ast
import importlib
import re

import pytest

from tests.docs import reference
from tests.docs.reference import EVENTS, PAGES, PAGES_BY_NAME, REGENERATE, SRC


@pytest.mark.parametrize("name", sorted(PAGES_BY_NAME))
def test_reference_page_is_in_sync(name: str) -> None:
    page = PAGES / name
    assert page.read_text(encoding="utf-8") == PAGES_BY_NAME[name](), (
        f"docs/reference/{name} is out of date: run {REGENERATE}"
    )


def test_every_error_has_a_description() -> None:
    rows = reference.error_rows()
    assert len(rows) >= 26
    assert [name for name, _, _, when in rows if not when] == [], "add them to _RAISED_WHEN"
    assert {name for name, *_ in rows} == set(reference._RAISED_WHEN), (
        "_RAISED_WHEN names an error that is gone"
    )


def test_the_metrics_found_are_the_families_buttress_declares() -> None:
    found = {metric.name: metric for metric in reference.metrics()}
    assert len(found) >= 60
    assert found["buttress_http_requests_total"].labels == ("host", "status_class")
    assert found["buttress_cache_requests_total"].kind == "counter"  # a constant from another module
    assert found["buttress_db_query_cache_hits_total"].help  # declared in a loop over (name, help, tally)
    assert found["buttress_system_cpu_percent"].kind == "gauge"  # gauge = self.metrics.gauge; gauge(...)
    for metric in found.values():
        assert re.fullmatch(r"buttress_[a-z0-9_]+", metric.name), metric
        assert metric.help, metric


def test_every_metric_name_in_the_source_is_in_the_table() -> None:
    """A ``buttress_*`` string that names a metric (it ends in a unit or a known suffix) is listed."""
    listed = {metric.name for metric in reference.metrics()}
    suffixes = ("_total", "_seconds", "_bytes", "_percent", "_state", "_tokens", "_degraded", "_connections")
    named = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if re.fullmatch(r"buttress_[a-z0-9_]+", text) and text.endswith(suffixes):
                    named.add(text)
    examples = {"buttress_cache_size_bytes"}  # a name in MetricsRegistry's error messages, not a metric
    assert named - listed - examples == set()


@pytest.mark.parametrize("event", EVENTS, ids=[event.topic for event in EVENTS])
def test_each_documented_event_is_published_where_the_table_says(event: reference.Event) -> None:
    module = importlib.import_module(event.module)
    source = (SRC.parent / (event.module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    assert module is not None
    for word in event.words:
        assert word in source, f"{event.topic}: {word} is no longer in {event.module}"


def _published_words() -> set[tuple[str, str]]:
    """(module, word): the literal first argument of every emit/_emit/_publish/event/announce call."""
    calls = {"emit", "_emit", "_publish", "event", "announce"}
    found = set()
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in calls
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add((module, node.args[0].value))
    return found


def test_every_event_the_source_publishes_is_in_the_table() -> None:
    documented = {(event.module, word.strip('"')) for event in EVENTS for word in event.words}
    documented |= {(event.module, event.topic) for event in EVENTS}
    topics = {event.topic for event in EVENTS}  # a whole topic may be published from several modules
    missing = sorted(
        (module, word)
        for module, word in _published_words()
        if (module, word) not in documented and word not in topics
    )
    assert missing == [], f"add these to EVENTS in tests/docs/reference.py, then run {REGENERATE}"


@pytest.mark.usefixtures("isolated_settings")
def test_every_family_a_live_ops_server_exposes_is_in_the_table() -> None:
    """What the source scan finds is what a process exposes: HTTP calls, a cache, a breaker, then /metrics."""
    import asyncio

    import httpx

    from buttress.cache import get_cache
    from buttress.clock import FakeClock
    from buttress.http import HttpClient
    from buttress.resilience import CircuitBreaker
    from buttress.server import create_app
    from buttress.testing import Fault, Upstream

    with Upstream(seed=3) as upstream, HttpClient(clock=FakeClock()) as client:  # backoff without waiting
        upstream.add("flaky", Fault(errors={503: 0.5}))
        for n in range(6):
            client.get(upstream.url("flaky", f"/n/{n}"), raise_for_status=False)
    get_cache().get_or_set("docs:reference", lambda: 1)
    CircuitBreaker("docs-reference").call(len, "abc")

    async def scrape() -> str:
        app = create_app()
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as ops,
        ):
            return (await ops.get("/metrics")).text

    exposition = asyncio.run(scrape())
    exposed = set(re.findall(r"^# TYPE (buttress_[a-z0-9_]+) ", exposition, flags=re.MULTILINE))
    exposed = {name for name in exposed if not name.endswith("_created")}  # prometheus-client's own gauges
    listed = {metric.name for metric in reference.metrics()}
    assert len(exposed) >= 15
    assert exposed - listed == set(), f"the scan misses these: fix tests/docs/reference.py, then {REGENERATE}"
