"""Health checks for probes, the ops server and ``buttress health``.

Register checks (sync or async callables) on a :class:`HealthRegistry`, then ``await registry.run()``
(or ``registry.run_sync()``) for a :class:`HealthReport`. Checks run concurrently, each under its own
timeout; a check that raises, hangs or returns nonsense is a *failed check*, never an exception. A failing
critical check fails the report (HTTP 503); a failing optional check or any warning only warns (HTTP 200).

Groups: ``liveness`` (cheap, no dependencies: is the process able to answer?), ``readiness`` (default:
can it serve traffic, are its dependencies reachable?), ``startup``, or any custom name.

:meth:`HealthReport.to_dict` is an ``application/health+json`` document (draft-inadarei-api-health-check)
with two extension members per check: ``duration`` (protobuf JSON duration form, ``"0.012345s"``) and
``critical``. Per the draft, ``output`` is left out of passing checks.

Example::

    registry = HealthRegistry()
    registry.register(redis_check("redis://127.0.0.1:6379/0"))

    @registry.check("queue", critical=False)
    async def queue_depth() -> CheckResult:
        depth = await queue.depth()
        return CheckResult("warn" if depth > 1000 else "pass", f"{depth} jobs waiting", depth, "jobs")

    report = await registry.run("readiness")
    return JSONResponse(report.to_dict(), report.http_status, media_type=HEALTH_CONTENT_TYPE)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.health_types import CheckResult, HealthStatus, describe_exception
from buttress.observe._health_checks import (
    Threshold,
    database_check,
    disk_check,
    http_check,
    human_bytes,
    memory_check,
    parse_threshold,
    redis_check,
    required_settings_check,
    safe_url,
    sqlalchemy_url,
)
from buttress.observe._health_core import (
    HEALTH_CONTENT_TYPE,
    STANDARD_GROUPS,
    CheckFunction,
    CheckOutcome,
    HealthCheck,
    HealthRegistry,
    HealthReport,
    aggregate_status,
    rfc3339,
)

if TYPE_CHECKING:
    from buttress.config import ObserveSettings

__all__ = [
    "HEALTH_CONTENT_TYPE",
    "STANDARD_GROUPS",
    "CheckFunction",
    "CheckOutcome",
    "CheckResult",
    "HealthCheck",
    "HealthRegistry",
    "HealthReport",
    "HealthStatus",
    "ServiceUrls",
    "Threshold",
    "aggregate_status",
    "database_check",
    "default_health_registry",
    "describe_exception",
    "disk_check",
    "http_check",
    "human_bytes",
    "memory_check",
    "parse_threshold",
    "redis_check",
    "required_settings_check",
    "rfc3339",
    "safe_url",
    "sqlalchemy_url",
]


class ServiceUrls(Protocol):
    """What :func:`default_health_registry` reads from the settings (``buttress.config.Settings`` fits)."""

    @property
    def redis_url(self) -> str | None: ...

    @property
    def database_url(self) -> str | None: ...


def default_health_registry(
    settings: ServiceUrls | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    disk_path: str | None = None,
    checks: Iterable[HealthCheck] = (),
) -> HealthRegistry:
    """The checks every buttress service wants, built from its settings, plus ``checks``.

    Redis and the database are checked only when their URL is set, and are critical: a service
    configured to use them depends on them. ``checks`` (the capabilities' own, gathered by the
    composition root, :func:`buttress.composition.health_registry`) come next; one named ``redis`` or
    ``database`` takes the place of the built-in check of that name. Disk and memory follow the
    ``observe`` settings (``disk_paths``, ``*_warn_percent``, ``*_fail_percent``), as the ops server's
    sampler does; ``disk_path`` checks that one path instead. They are optional: when a whole fleet
    runs low, marking every replica unready would turn a warning into an outage. ``settings`` defaults
    to :func:`buttress.config.get_settings`.
    """
    if settings is None:
        from buttress.config import get_settings  # noqa: PLC0415 - config is optional for library users

        settings = get_settings()
    app = getattr(settings, "app", None)
    registry = HealthRegistry(clock=clock, service_id=getattr(app, "name", None))
    checks = list(checks)
    given = {check.name for check in checks}
    if settings.redis_url and "redis" not in given:
        registry.register(redis_check(settings.redis_url))
    if settings.database_url and "database" not in given:
        registry.register(database_check(settings.database_url))
    for check in checks:
        registry.register(check)
    for check in _system_checks(getattr(settings, "observe", None), disk_path):
        registry.register(check)
    return registry


def _system_checks(observe: ObserveSettings | None, disk_path: str | None) -> list[HealthCheck]:
    """The disk checks (one per path: ``disk``, or ``disk <path>`` for several) and the memory check,
    with the thresholds of ``observe`` (used percentages) or the built-in ones without it."""
    if observe is None:
        return [disk_check(disk_path or ".", critical=False), memory_check(critical=False)]
    paths = [disk_path] if disk_path is not None else observe.disk_paths
    disks = [
        disk_check(
            path,
            warn_below=f"{100.0 - observe.disk_warn_percent:g}%",  # the settings count used space, not free
            fail_below=f"{100.0 - observe.disk_fail_percent:g}%",
            name="disk" if len(paths) == 1 else f"disk {path}".replace(":", "_"),
            critical=False,
        )
        for path in paths
    ]
    memory = memory_check(
        warn_above=observe.memory_warn_percent, fail_above=observe.memory_fail_percent, critical=False
    )
    return [*disks, memory]
