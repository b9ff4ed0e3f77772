"""``buttress demo``: a short tour of the foundation, running for real.

The demo's main job (a batch of HTTP calls through per-host policies against a fault-injecting upstream)
arrives with the HTTP client. Until then it exercises what exists end to end: settings, the container, the
event bus (across two processes when Redis answers), metrics with window quantiles, and health checks.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from buttress.config import Settings, mask_url_password
from buttress.container import get_container
from buttress.events import Event, EventBus, RedisTransport, create_event_bus
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry, timed

__all__ = ["DemoReport", "run_demo"]

_DONE = "demo.done"
_DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class DemoReport:
    """What the tour did and measured; printed as a table or as JSON."""

    environment: str
    events_published: int
    events_received_locally: int
    redis_url: str | None
    events_received_by_other_process: int | None
    work_p50_ms: float | None
    work_p99_ms: float | None
    health_status: str
    health_checks: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _remote_subscriber(url: str, prefix: str, ready: Any, results: Any) -> None:
    """Runs in a second process: count the demo events that reach it through Redis."""
    received: list[str] = []
    finished = threading.Event()

    def on_event(event: Event) -> None:
        if event.topic == _DONE:
            finished.set()
        else:
            received.append(event.topic)

    with create_event_bus("redis", redis_url=url, channel_prefix=prefix) as bus:
        bus.subscribe("demo.**", on_event)
        transport = bus.transport
        if isinstance(transport, RedisTransport):
            transport.wait_connected(10.0)
        ready.set()
        finished.wait(30.0)
        bus.flush()
    results.put(len(received))


def _redis_answers(url: str) -> bool:
    import redis  # noqa: PLC0415 - only the demo needs a direct client

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _events_across_processes(url: str, count: int) -> int | None:
    """Publish ``count`` events through Redis and return how many a second process received."""
    prefix = f"buttress:demo:{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    ready, results = context.Event(), context.Queue()
    child = context.Process(target=_remote_subscriber, args=(url, prefix, ready, results), daemon=True)
    child.start()
    try:
        if not ready.wait(30.0):
            return None
        with create_event_bus("redis", redis_url=url, channel_prefix=prefix) as bus:
            for number in range(count):
                bus.publish(f"demo.track.{number % 5}", {"number": number})
            bus.publish(_DONE, {})
            transport = bus.transport
            if isinstance(transport, RedisTransport):
                transport.flush(10.0)
        received: int = results.get(timeout=30.0)
    except queue.Empty:
        return None
    else:
        return received
    finally:
        child.join(10.0)
        if child.is_alive():
            child.terminate()


def _events_in_process(bus: EventBus, count: int) -> int:
    seen: list[Event] = []
    subscription = bus.subscribe("demo.**", seen.append, queue_size=count)
    try:
        for number in range(count):
            bus.publish(f"demo.track.{number % 5}", {"number": number})
        bus.flush()
        return len(seen)
    finally:
        subscription.unsubscribe()


def _measured_work(metrics: MetricsRegistry, count: int) -> tuple[float | None, float | None]:
    histogram = metrics.histogram("buttress_demo_work_seconds", "Duration of the demo's unit of work.")
    for number in range(count):
        with timed(histogram):
            sum(i * i for i in range(200 + number % 300))
    window = histogram.window_stats()
    p50, p99 = window["p50"], window["p99"]
    return (None if p50 is None else p50 * 1000, None if p99 is None else p99 * 1000)


def run_demo(*, events: int = 1000, redis_url: str | None = None) -> DemoReport:
    """Run the tour; Redis is used when ``redis_url`` (or the settings' URL, or the local default) answers."""
    started = time.perf_counter()
    container = get_container()
    settings = container.resolve(Settings)
    metrics = container.resolve(MetricsRegistry)

    with create_event_bus() as bus:
        received_locally = _events_in_process(bus, events)

    url = redis_url or settings.redis_url or _DEFAULT_REDIS
    received_remotely = _events_across_processes(url, events) if _redis_answers(url) else None
    p50, p99 = _measured_work(metrics, 500)

    health = container.resolve(HealthRegistry)
    report = health.run_sync()
    checks: dict[str, str] = {outcome.name: outcome.status for outcome in report.checks}

    return DemoReport(
        environment=settings.app.environment,
        events_published=events,
        events_received_locally=received_locally,
        redis_url=mask_url_password(url) if received_remotely is not None else None,
        events_received_by_other_process=received_remotely,
        work_p50_ms=p50,
        work_p99_ms=p99,
        health_status=report.status,
        health_checks=checks,
        wall_seconds=round(time.perf_counter() - started, 3),
    )
