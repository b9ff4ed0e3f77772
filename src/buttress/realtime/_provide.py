"""What realtime offers the composition root: its container registration and its health check.

No ``from __future__ import annotations``: the factory is defined after its types are imported, so the
container's wiring reads real classes from its annotations.
"""

from typing import TYPE_CHECKING

from buttress.container import Container, get_container
from buttress.events import EventBus
from buttress.realtime._realtime import Realtime, create_realtime

if TYPE_CHECKING:
    from buttress.config import Settings
    from buttress.observe.health import HealthCheck

__all__ = ["get_realtime", "health_checks", "register_services", "set_realtime"]


def register_services(container: Container) -> None:
    """Register the process-wide :class:`Realtime`, a singleton built from ``Settings.realtime``."""
    from buttress.config import Settings  # noqa: PLC0415 - config is optional for library users

    def default_realtime(settings: Settings, bus: EventBus) -> Realtime:
        return create_realtime(settings, bus=bus)

    container.register(Realtime, default_realtime)


def get_realtime() -> Realtime:
    """The process-wide :class:`Realtime`, built from settings (``realtime.*``) on first use."""
    return get_container().resolve(Realtime)


def set_realtime(realtime: Realtime | None) -> Realtime | None:
    """Make ``realtime`` the process-wide one (``None``: back to the one built from settings)."""
    return get_container().replace(Realtime, realtime)


def health_checks(container: Container, settings: "Settings") -> "list[HealthCheck]":
    """The ``realtime`` check once the process built its Realtime: can the log be reached?

    Optional: while the log is down, connections stay open and catch up when it is back.
    """
    from buttress.observe.health import HealthCheck  # noqa: PLC0415 - only the composition root calls this

    return [
        HealthCheck(
            name="realtime",
            fn=lambda: container.resolve(Realtime).check(),
            critical=False,
            component_type="component",
        )
    ]
