"""What resilience offers the composition root: its container registration and its store's health check.

No ``from __future__ import annotations``: the factory's annotations must be real classes for the
container's wiring.
"""

from typing import TYPE_CHECKING

from buttress.container import Container

if TYPE_CHECKING:
    from buttress.config import Settings
    from buttress.health_types import CheckResult
    from buttress.observe.health import HealthCheck

__all__ = ["health_checks", "register_services"]


def register_services(container: Container) -> None:
    """Register :class:`ResilienceDefaults` (store, breakers, pipelines), a singleton built from ``Settings``.

    The container closes it, which closes the Redis store's pool.
    """
    from buttress.config import Settings  # noqa: PLC0415 - config is optional for library users
    from buttress.resilience._defaults import ResilienceDefaults  # noqa: PLC0415 - keep `import buttress` light

    def defaults(settings: Settings) -> ResilienceDefaults:
        return ResilienceDefaults(settings)

    container.register(ResilienceDefaults, defaults)


def health_checks(container: Container, settings: "Settings") -> "list[HealthCheck]":
    """The ``resilience_store`` check when the store is Redis (optional: its outage policy keeps calls
    flowing, and the warning says which policy)."""
    from buttress.observe.health import HealthCheck  # noqa: PLC0415 - only the composition root calls this
    from buttress.resilience._defaults import ResilienceDefaults  # noqa: PLC0415 - keep `import buttress` light

    if not (settings.redis_url and settings.resilience.store == "redis"):
        return []

    def store_check() -> "CheckResult | None":
        store = container.resolve(ResilienceDefaults).store
        return None if store is None else store.check()

    return [HealthCheck(name="resilience_store", fn=store_check, critical=False, component_type="datastore")]
