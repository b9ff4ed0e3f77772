"""The composition root: each capability's container registrations and health checks, gathered here.

A capability offers ``register_services(container)`` (its process-wide objects, registered lazily as
singletons) and, when it has something to report, ``health_checks(container, settings)``; this module
is the one place that knows them all. The default container (:func:`buttress.container.get_container`)
asks :class:`OnDemand` for a capability's registrations the first time one of its types is resolved, so
``get_metrics()`` loads observe and nothing else (a ``Retry`` never pays for settings, the cache or
httpx); :func:`register_defaults` registers everything at once on a container of your own. The ops
server and ``buttress health`` build their health registries with :func:`health_registry`. Observe
never imports what it observes: the checks of the cache, the resilience store and the event bus come
from those packages, through here.

Nothing below the composition root imports this module, and it imports each capability only inside
the function that registers it, so creating the default container stays light. No ``from __future__
import annotations``: the health registry factory's annotations must be real classes for the
container's wiring.
"""

import importlib.util
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.container import Container, get_container

if TYPE_CHECKING:
    from buttress.config import Settings
    from buttress.observe.health import HealthRegistry

__all__ = ["OnDemand", "db_installed", "health_registry", "register_defaults"]


def _settings(container: Container) -> None:
    from buttress.config import Settings, get_settings  # noqa: PLC0415 - pydantic, only when settings are asked for

    container.register_borrowed(Settings, get_settings)


def _clock(container: Container) -> None:
    container.register_instance(Clock, SYSTEM_CLOCK)  # type: ignore[type-abstract]


def _observe(container: Container) -> None:
    from buttress import observe  # noqa: PLC0415 - loaded already: one of its types was asked for

    observe.register_services(container)


def _health(container: Container) -> None:
    from buttress.config import Settings  # noqa: PLC0415 - the factory's annotation; health needs settings
    from buttress.observe.health import HealthRegistry  # noqa: PLC0415 - loaded already when asked for

    def default_health(settings: Settings, container: Container) -> HealthRegistry:
        return health_registry(settings, container)

    container.register(HealthRegistry, default_health)


def _events(container: Container) -> None:
    from buttress import events  # noqa: PLC0415 - loaded already: one of its types was asked for

    events.register_services(container)


def _cache(container: Container) -> None:
    from buttress import cache  # noqa: PLC0415 - loaded already: one of its types was asked for

    cache.register_services(container)


def _resilience(container: Container) -> None:
    from buttress import resilience  # noqa: PLC0415 - loaded already: one of its types was asked for

    resilience.register_services(container)


def _http(container: Container) -> None:
    from buttress import http  # noqa: PLC0415 - loaded already: one of its types was asked for

    http.register_services(container)


def db_installed() -> bool:
    """Whether the ``[db]`` extra's SQLAlchemy is importable (looked up without importing it)."""
    try:
        return importlib.util.find_spec("sqlalchemy") is not None
    except ImportError:  # a meta path finder that refuses it outright
        return False


def _db(container: Container) -> None:
    if not db_installed():
        return  # without the [db] extra nobody can hold a Database: nothing to register
    from buttress import db  # noqa: PLC0415 - SQLAlchemy, only once the database is asked for or registered

    db.register_services(container)


def _jobs(container: Container) -> None:
    if not db_installed():
        return  # jobs live in the database: without the [db] extra there is nothing to register
    from buttress import jobs  # noqa: PLC0415 - loaded already: one of its types was asked for

    jobs.register_services(container)


def _files(container: Container) -> None:
    if not db_installed():
        return  # files' rows live in the database: without the [db] extra there is nothing to register
    from buttress import files  # noqa: PLC0415 - loaded already: one of its types was asked for

    files.register_services(container)


def _realtime(container: Container) -> None:
    from buttress import realtime  # noqa: PLC0415 - loaded already: one of its types was asked for

    realtime.register_services(container)


_PROVIDERS: dict[str, Callable[[Container], None]] = {
    "buttress.config": _settings,
    "buttress.clock": _clock,
    "buttress.observe": _observe,
    "buttress.events": _events,
    "buttress.cache": _cache,
    "buttress.resilience": _resilience,
    "buttress.http": _http,
    "buttress.db": _db,
    "buttress.jobs": _jobs,
    "buttress.files": _files,
    "buttress.realtime": _realtime,
}
"""Which provider registers the types defined under each package (the health registry aside)."""


_FOREIGN: dict[tuple[str, str], str] = {
    ("sqlalchemy.orm.session", "Session"): "buttress.db",
    ("sqlalchemy.ext.asyncio.session", "AsyncSession"): "buttress.db",
}
"""Types from other libraries a capability registers (the scoped sessions): their provider's package."""


def _provider_of(service_type: Any) -> tuple[str, Callable[[Container], None]] | None:
    module = getattr(service_type, "__module__", None)
    if not isinstance(module, str):
        return None
    foreign = _FOREIGN.get((module, getattr(service_type, "__qualname__", "")))
    if foreign is not None:
        return foreign, _PROVIDERS[foreign]
    if not module.startswith("buttress."):
        return None
    if (
        module == "buttress.observe._health_core"
        and getattr(service_type, "__name__", "") == "HealthRegistry"
    ):
        return "health", _health
    package = ".".join(module.split(".", 2)[:2])
    provider = _PROVIDERS.get(package)
    return None if provider is None else (package, provider)


class OnDemand:
    """Registers a capability's services the first time the container misses one of its types.

    The package a type is defined in names its provider, and a type's package is loaded by the time
    anyone holds the type, so asking for ``MetricsRegistry`` costs no import beyond observe's. Each
    provider runs once per container, under a lock: two threads missing at once register once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: set[str] = set()

    def __call__(self, container: Container, service_type: Any) -> bool:
        """Register what provides ``service_type``; False when buttress provides no such type."""
        found = _provider_of(service_type)
        if found is None:
            return False
        name, provider = found
        with self._lock:
            if name not in self._done:
                provider(container)
                self._done.add(name)
        return True


def register_defaults(container: Container) -> None:
    """Register buttress's process-wide services on ``container`` at once (nothing is built until resolved).

    ``Settings`` is borrowed from :func:`~buttress.config.get_settings` (resolved anew each time, never
    closed here); ``Clock`` is ``SYSTEM_CLOCK``; the rest are the container's singletons, closed by
    :meth:`Container.close` in reverse creation order: ``MetricsRegistry``, ``ErrorAggregator``,
    ``Profiler`` (observe), ``EventBus`` (events), ``Cache`` (cache), ``ResilienceDefaults`` (resilience:
    store, breakers, pipelines), ``HttpDefaults`` with ``HttpClient``/``AsyncHttpClient`` (http), and
    ``HealthRegistry``, built by :func:`health_registry` from the container's ``Settings``. The default
    container registers the same services one capability at a time, on demand (:class:`OnDemand`).
    """
    for provider in (*_PROVIDERS.values(), _health):
        provider(container)


def _runs_jobs(settings: "Settings", container: Container) -> bool:
    """Whether this program defines jobs and keeps them somewhere others share (or already built its queue).

    A program that never imported ``buttress.jobs`` has no jobs to check; one on the embedded SQLite file
    gets the check once it has used its queue, so building the health registry never creates the file.
    """
    jobs = sys.modules.get("buttress.jobs")
    if jobs is None or not jobs.REGISTRY.tasks:
        return False
    return bool(settings.database_url) or container.peek(jobs.Jobs) is not None


def _runs_files(container: Container) -> bool:
    """Whether this program already built its file store (building the health registry builds none)."""
    files = sys.modules.get("buttress.files")
    return files is not None and container.peek(files.FileStore) is not None


def _runs_realtime(container: Container) -> bool:
    """Whether this program already built its Realtime (building the health registry builds none)."""
    realtime = sys.modules.get("buttress.realtime._realtime")
    return realtime is not None and container.peek(realtime.Realtime) is not None


def health_registry(
    settings: "Settings | None" = None,
    container: Container | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    disk_path: str | None = None,
) -> "HealthRegistry":
    """Observe's default checks for ``settings`` plus every capability's own, in one registry.

    In order: ``redis`` and ``database`` (when their URL is set, critical; the database check probes the
    container's :class:`~buttress.db.Database`, and without the ``[db]`` extra observe's own check says
    which extra to install), then ``resilience_store`` (Redis
    store), ``cache`` and ``events`` (Redis transport), ``jobs``, ``files`` and ``realtime`` once this program
    built them, all optional, then ``disk`` (one per ``observe.disk_paths``, or ``disk_path`` alone) and
    ``memory``, with the ``observe`` thresholds. The
    capabilities' checks resolve what they probe from ``container`` (default: the default container)
    when they run, so building the registry builds nothing else. ``settings`` defaults to
    :func:`~buttress.config.get_settings`.
    """
    from buttress import cache, events, resilience  # noqa: PLC0415 - every capability's checks, only here
    from buttress.config import get_settings  # noqa: PLC0415 - pydantic, only when health is built
    from buttress.observe.health import default_health_registry  # noqa: PLC0415 - as above

    settings = get_settings() if settings is None else settings
    container = get_container() if container is None else container
    capabilities: list[Any] = [resilience, cache, events]
    if settings.database_url and db_installed():
        from buttress import db  # noqa: PLC0415 - SQLAlchemy, only for a service configured with a database

        capabilities.insert(0, db)
    if _runs_jobs(settings, container):
        capabilities.append(sys.modules["buttress.jobs"])
    if _runs_files(container):
        capabilities.append(sys.modules["buttress.files"])
    if _runs_realtime(container):
        capabilities.append(sys.modules["buttress.realtime"])
    checks = [check for capability in capabilities for check in capability.health_checks(container, settings)]
    return default_health_registry(settings, clock=clock, disk_path=disk_path, checks=checks)
