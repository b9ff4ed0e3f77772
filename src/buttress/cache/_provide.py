"""What the cache offers the composition root: its container registration and its health check.

No ``from __future__ import annotations``: the factories are defined after their types are imported, so
the container's wiring reads real classes from their annotations.
"""

from typing import TYPE_CHECKING

from buttress.container import Container

if TYPE_CHECKING:
    from buttress.config import Settings
    from buttress.observe.health import HealthCheck

__all__ = ["health_checks", "register_services"]


def register_services(container: Container) -> None:
    """Register the process-wide :class:`Cache` (a singleton built from ``Settings`` on first resolve).

    The container closes it, and with it the Redis pools and any bus its tiered backend owns.
    """
    from buttress.cache._cache import Cache  # noqa: PLC0415 - registering must not import the cache's deps early
    from buttress.cache._defaults import build_cache  # noqa: PLC0415 - as above
    from buttress.config import Settings  # noqa: PLC0415 - config is optional for library users
    from buttress.events import EventBus  # noqa: PLC0415 - as above

    def default_cache(settings: Settings, container: Container) -> Cache:
        return build_cache(settings, event_bus=lambda: container.resolve(EventBus))

    container.register(Cache, default_cache)


def health_checks(container: Container, settings: "Settings") -> "list[HealthCheck]":
    """The ``cache`` check (optional: an unreachable Redis only makes the cache serve from memory)."""
    from buttress.cache._cache import Cache  # noqa: PLC0415 - built on the first probe, not before
    from buttress.cache._defaults import cache_health  # noqa: PLC0415 - as above
    from buttress.observe.health import HealthCheck  # noqa: PLC0415 - only the composition root calls this

    return [
        HealthCheck(
            name="cache",
            fn=lambda: cache_health(container.resolve(Cache)),
            critical=False,
            component_type="datastore",
        )
    ]
