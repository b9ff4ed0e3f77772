"""The ops server's state: what its endpoints read, and the lifespan that starts and stops it.

One :class:`Ops` per app holds the settings, the registries the endpoints report on, the admin
authenticator and the start time. Everything is injectable (``create_app(health=..., metrics=...,
clock=...)``) and defaults to the process-wide objects, so the ops server shows what the rest of the
service records.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from buttress._bearer import AdminAuth
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.composition import health_registry
from buttress.config import Settings
from buttress.container import get_container
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry, rfc3339
from buttress.observe.metrics import MetricsRegistry
from buttress.observe.profiler import Profiler
from buttress.observe.system import SystemSample, SystemSampler, SystemThresholds

__all__ = ["Lifespan", "Ops", "default_sampler", "ops_health_registry"]

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
"""What ``app.router.lifespan_context`` holds: app -> async context manager (yielding optional state)."""


def buttress_version() -> str:
    try:
        return package_version("buttress")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "unknown"


def default_sampler(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> SystemSampler:
    """A system sampler with the interval, disks and thresholds of ``settings.observe``."""
    observe = settings.observe
    thresholds = SystemThresholds(
        memory_warn=observe.memory_warn_percent,
        memory_fail=observe.memory_fail_percent,
        disk_warn=observe.disk_warn_percent,
        disk_fail=observe.disk_fail_percent,
    )
    return SystemSampler(observe.sampler_interval, observe.disk_paths, clock=clock, thresholds=thresholds)


def ops_health_registry(settings: Settings, sampler: SystemSampler, *, clock: Clock) -> HealthRegistry:
    """The composition root's :func:`~buttress.composition.health_registry` (observe's checks and every
    capability's own) with its disk and memory checks replaced by the sampler's.

    The sampler's ``system`` check covers memory, every configured disk, CPU and file descriptors with
    the configured thresholds, and reuses the latest sample instead of reading psutil per probe. Like
    the checks it replaces it is optional: a fleet-wide disk warning must not take every replica out.
    """
    registry = health_registry(settings, clock=clock)
    for check in list(registry):  # "disk", or "disk <path>" for each of several configured paths
        if check.name in ("disk", "memory") or check.name.startswith("disk "):
            registry.remove(check.name)
    registry.add("system", sampler.health_check(), critical=False, component_type="system")
    return registry


async def stop_realtime_hub() -> None:
    """Stop this loop's realtime hub, if the process built its Realtime (connections close with 1001)."""
    realtime = sys.modules.get("buttress.realtime._realtime")
    if realtime is None:
        return
    built = get_container().peek(realtime.Realtime)
    if built is not None:
        await built.astop_hub()


@dataclass(eq=False)
class Ops:
    """Everything the ops endpoints and the middleware need; one per app (``app.state.buttress``).

    ``health`` is the registry the health endpoints run on each probe: add an application's own checks
    to it (``ops.health.add(name, fn)`` or ``@ops.health.check(name)``), before or after startup.
    """

    settings: Settings
    health: HealthRegistry
    metrics: MetricsRegistry
    sampler: SystemSampler
    profiler: Profiler
    errors: ErrorAggregator
    auth: AdminAuth
    clock: Clock = SYSTEM_CLOCK
    prefix: str = ""
    owns_health: bool = False
    version: str = field(default_factory=buttress_version)
    warming: list[threading.Thread] = field(default_factory=list)
    """The threads of the cache warmers started with the lifespan (they never delay startup)."""
    started_at: float = 0.0
    _started_monotonic: float = 0.0

    def __post_init__(self) -> None:
        self.mark_started()
        self._declare_gauges()
        previous = self.sampler.on_sample
        if previous is None:
            self.sampler.on_sample = self.record_sample
        else:

            def both(sample: SystemSample) -> None:
                previous(sample)
                self.record_sample(sample)

            self.sampler.on_sample = both

    @property
    def expose_details(self) -> bool:
        return self.settings.server.expose_details

    # -- time ---------------------------------------------------------------------------------------

    def mark_started(self) -> None:
        """Remember now as the start (app creation, then again when the lifespan starts)."""
        self.started_at = self.clock.time()
        self._started_monotonic = self.clock.monotonic()
        start_gauge = getattr(self, "_start_gauge", None)
        if start_gauge is not None:
            start_gauge.set(self.started_at)

    def uptime(self) -> float:
        return max(self.clock.monotonic() - self._started_monotonic, 0.0)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.settings.app.name,
            "environment": self.settings.app.environment,
            "version": self.version,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": rfc3339(self.started_at),
            "start_time": self.started_at,
            "uptime_seconds": round(self.uptime(), 6),
        }

    # -- system gauges ------------------------------------------------------------------------------

    def _declare_gauges(self) -> None:
        gauge = self.metrics.gauge
        self._start_gauge = gauge(
            "buttress_server_start_time_seconds", "Unix time the ops server started.", multiprocess_mode="max"
        )
        self._start_gauge.set(self.started_at)
        self._process_cpu = gauge(
            "buttress_system_process_cpu_percent", "CPU used by this process (100 = one core busy)."
        )
        self._system_cpu = gauge("buttress_system_cpu_percent", "CPU used on the whole host, 0-100.")
        self._rss = gauge("buttress_system_process_rss_bytes", "Resident memory of this process.")
        self._memory = gauge("buttress_system_memory_used_percent", "Host memory in use, 0-100.")
        self._disk_used = gauge(
            "buttress_system_disk_used_percent", "Used space of a sampled filesystem.", labels=("path",)
        )
        self._disk_free = gauge(
            "buttress_system_disk_free_bytes", "Free space of a sampled filesystem.", labels=("path",)
        )
        self._fds = gauge("buttress_system_open_fds", "File descriptors this process holds open.")

    def record_sample(self, sample: SystemSample) -> None:
        """Copy one system sample into the ``buttress_system_*`` gauges."""
        self._process_cpu.set(sample.process_cpu_percent)
        self._system_cpu.set(sample.system_cpu_percent)
        self._rss.set(sample.process_rss_bytes)
        self._memory.set(sample.memory_percent)
        for disk in sample.disks:
            if disk.used_percent is not None:
                self._disk_used.labels(path=disk.path).set(disk.used_percent)
            if disk.free_bytes is not None:
                self._disk_free.labels(path=disk.path).set(disk.free_bytes)
        if sample.open_fds is not None:
            self._fds.set(sample.open_fds)

    # -- lifespan -----------------------------------------------------------------------------------

    def wrap_lifespan(self, inner: Lifespan) -> Lifespan:
        """A lifespan that starts buttress around ``inner`` (the app's own), which still runs in full."""

        def lifespan(app: Any) -> AbstractAsyncContextManager[Any]:
            return self._lifespan(app, inner)

        return lifespan

    @asynccontextmanager
    async def _lifespan(self, app: Any, inner: Lifespan) -> AsyncIterator[Any]:
        # buttress starts first and stops last, so the app's own startup and shutdown are observed.
        self.mark_started()
        self.sampler.start()
        if self.settings.cache.warm_on_startup:
            from buttress.cache import start_cache_warming  # noqa: PLC0415 - only at startup

            self.warming = start_cache_warming()
        start_profiler = self.settings.observe.profiler_enabled and not self.profiler.enabled
        if start_profiler:
            self.profiler.start()
        try:
            async with inner(app) as state:
                yield state
        finally:
            if start_profiler:
                self.profiler.stop()
            await stop_realtime_hub()
            await asyncio.to_thread(self.sampler.stop)
            if self.owns_health:
                await asyncio.to_thread(self.health.close)
