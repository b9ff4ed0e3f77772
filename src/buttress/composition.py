"""The composition root: each capability's container registrations and health checks, gathered once.

A capability offers ``register_services(container)`` (its process-wide objects, registered lazily as
singletons) and, when it has something to report, ``health_checks(container, settings)``; this module
is the one place that knows them all. The default container (:func:`buttress.container.get_container`)
calls :func:`register_defaults` when it is created; the ops server and ``buttress health`` build their
health registries with :func:`health_registry`. Observe never imports what it observes: the checks of
the cache, the resilience store and the event bus come from those packages, through here.

Nothing below the composition root imports this module; the default container imports it when it is
first created, so importing buttress itself stays light. No ``from __future__ import annotations``: the
health registry factory's annotations must be real classes for the container's wiring.
"""

from buttress import cache, events, http, observe, resilience
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import Settings, get_settings
from buttress.container import Container, get_container
from buttress.observe.health import HealthRegistry, default_health_registry

__all__ = ["health_registry", "register_defaults"]


def register_defaults(container: Container) -> None:
    """Register buttress's process-wide services on ``container`` (nothing is built until resolved).

    ``Settings`` is borrowed from :func:`~buttress.config.get_settings` (resolved anew each time, never
    closed here); ``Clock`` is ``SYSTEM_CLOCK``; the rest are the container's singletons, closed by
    :meth:`Container.close` in reverse creation order: ``MetricsRegistry``, ``ErrorAggregator``,
    ``Profiler`` (observe), ``EventBus`` (events), ``Cache`` (cache), ``ResilienceDefaults`` (resilience:
    store, breakers, pipelines), ``HttpDefaults`` with ``HttpClient``/``AsyncHttpClient`` (http), and
    ``HealthRegistry``, built by :func:`health_registry` from the container's ``Settings``.
    """
    container.register_borrowed(Settings, get_settings)
    container.register_instance(Clock, SYSTEM_CLOCK)  # type: ignore[type-abstract]
    for capability in (observe, events, cache, resilience, http):
        capability.register_services(container)

    def default_health(settings: Settings, container: Container) -> HealthRegistry:
        return health_registry(settings, container)

    container.register(HealthRegistry, default_health)


def health_registry(
    settings: Settings | None = None,
    container: Container | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    disk_path: str = ".",
) -> HealthRegistry:
    """Observe's default checks for ``settings`` plus every capability's own, in one registry.

    In order: ``redis`` and ``database`` (when configured, critical), then ``resilience_store`` (Redis
    store), ``cache`` and ``events`` (Redis transport), all optional, then ``disk`` and ``memory``. The
    capabilities' checks resolve what they probe from ``container`` (default: the default container)
    when they run, so building the registry builds nothing else. ``settings`` defaults to
    :func:`~buttress.config.get_settings`.
    """
    settings = get_settings() if settings is None else settings
    container = get_container() if container is None else container
    checks = [
        check
        for capability in (resilience, cache, events)
        for check in capability.health_checks(container, settings)
    ]
    return default_health_registry(settings, clock=clock, disk_path=disk_path, checks=checks)
