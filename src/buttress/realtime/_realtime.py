"""The process's realtime object: the topic log, the recorder that fills it, and a hub per event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import RealtimeSettings
from buttress.errors import ValidationError
from buttress.events import EventBus, get_event_bus
from buttress.health_types import CheckResult
from buttress.realtime._hub import Hub
from buttress.realtime._log import MemoryTopicLog, TopicLog
from buttress.realtime._recorder import Recorder
from buttress.realtime._telemetry import RealtimeTelemetry

if TYPE_CHECKING:
    from buttress.config import Settings
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["LINGER", "Realtime", "create_realtime"]

LINGER = 10.0
"""Seconds a hub keeps following the log after its last connection left, so reconnects find it running."""
_CLOSE_WAIT = 6.0


class Realtime:
    """Carries recorded bus events to WebSocket and SSE clients (see ``realtime_router``).

    ``log`` keeps the events clients resume from: a :class:`MemoryTopicLog` (this process) by default,
    or a shared one such as :class:`~buttress.realtime.RedisTopicLog`, which this process then only
    appends its own events to. ``settings.record`` selects the topics recorded. Connections are served
    by a hub on the event loop they arrive on; it runs while it has connections.
    """

    def __init__(
        self,
        *,
        bus: EventBus | None = None,
        log: TopicLog | None = None,
        settings: RealtimeSettings | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings if settings is not None else RealtimeSettings()
        self.bus = bus if bus is not None else get_event_bus()
        self.log: TopicLog = log if log is not None else MemoryTopicLog(retention=self.settings.retention)
        self.clock = clock
        self.telemetry = RealtimeTelemetry(metrics)
        shared = not isinstance(self.log, MemoryTopicLog)
        self._recorder = Recorder(self.bus, self.log, self.settings.record, own_only=shared)
        self._hubs: dict[asyncio.AbstractEventLoop, Hub] = {}
        self._closed = False

    def publish(self, topic: str, data: Mapping[str, Any] | None = None) -> None:
        """Publish ``data`` on the bus under ``topic``; recorded topics reach every subscribed client."""
        self.bus.publish(topic, data)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until what was published so far is in the log's hands; False if ``timeout`` ran out."""
        return self._recorder.flush(timeout)

    def hub(self) -> Hub:
        """The hub of the running event loop (made on first use)."""
        if self._closed:
            raise ValidationError("this Realtime is closed; build a new one", field="realtime")
        loop = asyncio.get_running_loop()
        hub = self._hubs.get(loop)
        if hub is None:
            for stale in [known for known in self._hubs if known.is_closed()]:
                del self._hubs[stale]
            hub = self._hubs[loop] = Hub(
                self.log, settings=self.settings, telemetry=self.telemetry, clock=self.clock
            )
        return hub

    def release(self, hub: Hub) -> None:
        """Stop ``hub`` when it has had no connection for ``LINGER`` seconds (reconnects find it running)."""
        if not hub.connections:
            hub.idle_since = self.clock.monotonic()
            hub.loop.call_later(LINGER, self._stop_if_idle, hub)

    def _stop_if_idle(self, hub: Hub) -> None:
        """Stop ``hub`` if it has been idle for ``LINGER`` seconds *without a break*.

        Each release schedules this check; a hub whose clients come and go is idle for an instant at
        many moments, and stopping it at one of them would end its follower under the new hub that the
        next connection makes. A later release's own check decides instead.
        """
        if hub.connections or self._hubs.get(hub.loop) is not hub:
            return
        if self.clock.monotonic() - hub.idle_since < LINGER:
            return
        del self._hubs[hub.loop]
        hub.loop.create_task(hub.aclose())

    def stats(self) -> dict[str, Any]:
        hubs = [hub.stats() for hub in list(self._hubs.values())]
        return {
            "connections": sum(hub["connections"] for hub in hubs),
            "queued": sum(hub["queued"] for hub in hubs),
            "log": self.log.status(),
        }

    def check(self) -> CheckResult:
        return self.log.check()

    def close(self) -> None:
        """Stop recording, close open connections (1001) and the log.

        Call it from outside the server's event loop (after the app stopped, or from another thread),
        or use :meth:`aclose` on it: the hubs' tasks are waited for on their own loops.
        """
        if self._closed:
            return
        self._closed = True
        self._recorder.close()
        hubs, self._hubs = list(self._hubs.values()), {}
        for hub in hubs:
            if hub.loop.is_closed():
                continue
            if hub.loop.is_running():
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(hub.aclose(), hub.loop).result(_CLOSE_WAIT)
            else:
                hub.stop()
        self.log.close()

    async def astop_hub(self) -> None:
        """Stop the running loop's hub, if any (an app shutting down); the Realtime stays usable."""
        hub = self._hubs.pop(asyncio.get_running_loop(), None)
        if hub is not None:
            await hub.aclose()

    async def aclose(self) -> None:
        """:meth:`close` from the server's own event loop (a lifespan's shutdown)."""
        if self._closed:
            return
        self._closed = True
        self._recorder.close()
        hubs, self._hubs = list(self._hubs.values()), {}
        running = asyncio.get_running_loop()
        for hub in hubs:
            if hub.loop is running:
                await hub.aclose()
            elif hub.loop.is_running():
                future = asyncio.run_coroutine_threadsafe(hub.aclose(), hub.loop)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.wrap_future(future), _CLOSE_WAIT)
        self.log.close()

    def __enter__(self) -> Realtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_realtime(
    settings: Settings,
    *,
    bus: EventBus | None = None,
    metrics: MetricsRegistry | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Realtime:
    """A :class:`Realtime` as ``settings.realtime`` describes (``log=auto``: Redis when a URL is set)."""
    section = settings.realtime
    kind = section.log
    if kind == "auto":
        kind = "redis" if settings.redis_url else "memory"
    log: TopicLog
    if kind == "redis":
        if not settings.redis_url:
            raise ValidationError(
                "realtime.log is 'redis' but no Redis is configured: set BUTTRESS_REDIS_URL, "
                "or BUTTRESS_REALTIME__LOG=memory for one process",
                field="realtime.log",
            )
        from buttress.realtime._redis_log import RedisTopicLog  # noqa: PLC0415 - redis-py only when used

        log = RedisTopicLog(
            settings.redis_url, prefix=section.prefix, retention=section.retention, clock=clock
        )
    else:
        log = MemoryTopicLog(retention=section.retention)
    return Realtime(bus=bus, log=log, settings=section, metrics=metrics, clock=clock)
