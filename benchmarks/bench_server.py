"""The ops server: concurrent readiness checks, /metrics rendering and the request middleware's cost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import prometheus_client
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest

from benchmarks._harness import Row, Table, measure_ns
from buttress.config import Settings
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from buttress.observe.profiler import Profiler
from buttress.observe.system import SystemSampler
from buttress.server import create_app, install

SEQUENTIAL = "sequential"
PROM = "prometheus-client"
PLAIN = "plain FastAPI"
CHECKS = 10
CHECK_SECONDS = 0.1
SERIES = 1_000


async def _slow_check() -> None:
    await asyncio.sleep(CHECK_SECONDS)


def _app(health: HealthRegistry, metrics: MetricsRegistry) -> FastAPI:
    return create_app(
        Settings(_env_file=None),
        health=health,
        metrics=metrics,
        errors=ErrorAggregator(),
        profiler=Profiler(),
        sampler=SystemSampler(3600.0),
    )


def _sequential_app() -> FastAPI:
    """What a hand-written readiness endpoint often does: await each check in turn (prodkit's /ready)."""
    app = FastAPI()
    checks = [_slow_check] * CHECKS

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        for check in checks:
            await check()
        return {"status": "pass"}

    return app


def _plain_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def _fill(ours: MetricsRegistry) -> CollectorRegistry:
    """1,000 series in each registry: 500 counter series and 500 histogram series, one observation each."""
    counter = ours.counter("buttress_bench_requests_total", "Requests.", labels=("host",))
    histogram = ours.histogram("buttress_bench_latency_seconds", "Latency.", labels=("host",))
    plain = CollectorRegistry()
    plain_counter = prometheus_client.Counter("bench_requests_total", "Requests.", ["host"], registry=plain)
    plain_histogram = prometheus_client.Histogram(
        "bench_latency_seconds", "Latency.", ["host"], registry=plain
    )
    for i in range(SERIES // 2):
        host = f"host-{i}"
        counter.labels(host=host).inc()
        histogram.labels(host=host).observe(0.042)
        plain_counter.labels(host=host).inc()
        plain_histogram.labels(host=host).observe(0.042)
    return plain


def _getter(loop: asyncio.AbstractEventLoop, app: Any, path: str) -> Callable[[], httpx.Response]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")

    def get() -> httpx.Response:
        request: Awaitable[httpx.Response] = client.get(path)
        return loop.run_until_complete(request)

    return get


def run() -> Table:
    loop = asyncio.new_event_loop()
    try:
        return _run(loop)
    finally:
        loop.close()


def _run(loop: asyncio.AbstractEventLoop) -> Table:
    health = HealthRegistry()
    for i in range(CHECKS):
        health.add(f"dependency-{i}", _slow_check, timeout=1.0)
    ours = _app(health, MetricsRegistry())
    ready = _getter(loop, ours, "/health/ready")
    sequential = _getter(loop, _sequential_app(), "/health/ready")
    assert ready().status_code == 200
    assert sequential().status_code == 200

    metrics = MetricsRegistry()
    plain = _fill(metrics)
    rendered = _getter(loop, _app(HealthRegistry(), metrics), "/metrics")
    assert rendered().content.count(b'host="host-') == generate_latest(plain).count(b'host="host-')

    installed = _plain_app()
    install(
        installed,
        Settings(_env_file=None),
        health=HealthRegistry(),
        metrics=MetricsRegistry(),
        errors=ErrorAggregator(),
        profiler=Profiler(),
        sampler=SystemSampler(3600.0),
    )
    with_middleware = _getter(loop, installed, "/items/7")
    without = _getter(loop, _plain_app(), "/items/7")
    assert with_middleware().json() == without().json()

    rows = [
        Row(
            f"GET /health/ready, {CHECKS} checks of {CHECK_SECONDS * 1000:.0f} ms",
            measure_ns(ready, repeat=3),
            {SEQUENTIAL: measure_ns(sequential, repeat=3)},
        ),
        Row(
            f"render /metrics, {SERIES:,} series",
            measure_ns(metrics.render_prometheus),
            {PROM: measure_ns(lambda: generate_latest(plain))},
        ),
        Row(
            f"GET /metrics through the app, {SERIES:,} series",
            measure_ns(rendered),
            {PROM: measure_ns(lambda: generate_latest(plain))},
        ),
        Row(
            "GET /items/{id} of an app, with install()",
            measure_ns(with_middleware),
            {PLAIN: measure_ns(without)},
        ),
    ]
    return Table(
        title="Ops server (buttress.server)",
        anchors=[SEQUENTIAL, PROM, PLAIN],
        rows=rows,
        notes=[
            (
                f"Readiness: {CHECKS} async checks that each wait {CHECK_SECONDS * 1000:.0f} ms; "
                "buttress runs them concurrently, each under its own timeout; the anchor awaits them "
                "one after another in a plain FastAPI endpoint, as hand-written /ready endpoints often "
                "do. Both through httpx's ASGI transport."
            ),
            (
                "Render: 500 counter and 500 histogram series with one observation each, in a buttress "
                "registry and in a plain prometheus-client registry; buttress renders its registry with "
                "prometheus-client's exposition. 'Through the app' adds the HTTP request, routing and "
                "the ops middleware."
            ),
            (
                "install(): the same FastAPI app with and without buttress installed (request id, "
                "per-template metrics, error handling; ops routes under /ops), through httpx's ASGI "
                "transport."
            ),
        ],
    )
