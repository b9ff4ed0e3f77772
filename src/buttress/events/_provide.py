"""What the event bus offers the composition root: its container registration and its health check.

No ``from __future__ import annotations``: the factory is defined after its types are imported, so the
container's wiring reads real classes from its annotations.
"""

from typing import TYPE_CHECKING

from buttress.container import Container
from buttress.events._bus import EventBus
from buttress.health_types import CheckResult

if TYPE_CHECKING:
    from buttress.config import Settings
    from buttress.observe.health import HealthCheck

__all__ = ["health_checks", "register_services", "transport_health"]


def register_services(container: Container) -> None:
    """Register the process-wide :class:`EventBus`, a singleton built from ``Settings.events``.

    The container closes it (its workers and the transport's threads stop).
    """
    from buttress.config import Settings  # noqa: PLC0415 - config is optional for library users
    from buttress.events._default import create_event_bus  # noqa: PLC0415 - _default imports the container

    def default_bus(settings: Settings) -> EventBus:
        events = settings.events
        return create_event_bus(
            events.transport,
            redis_url=settings.redis_url,
            queue_size=events.queue_size,
            prefix=events.prefix,
        )

    container.register(EventBus, default_bus)


def health_checks(container: Container, settings: "Settings") -> "list[HealthCheck]":
    """The ``events`` check when events cross processes (Redis transport): is the transport connected?

    Optional: a disconnected transport still delivers in-process and reconnects by itself.
    """
    from buttress.observe.health import HealthCheck  # noqa: PLC0415 - only the composition root calls this

    if settings.events.transport != "redis":
        return []
    return [
        HealthCheck(
            name="events",
            fn=lambda: transport_health(container.resolve(EventBus)),
            critical=False,
            component_type="component",
        )
    ]


def transport_health(bus: EventBus) -> CheckResult:
    """The transport's own :meth:`~buttress.events.EventTransport.check`; a warning once the bus closed."""
    if bus.closed:
        name = bus.transport.info().name
        return CheckResult("warn", f"the {name} event bus is closed; events are not delivered")
    return bus.transport.check()
