"""buttress: the production layer Python services keep writing by hand.

The names here are the foundation every capability shares: settings, errors, the container, the event bus,
logging and the clock. They load on first use (PEP 562), so ``import buttress`` costs one small module;
``buttress.Settings`` imports pydantic the first time it is read. Capabilities keep their own modules
(``buttress.observe.metrics``, ``buttress.observe.health``, ...).
"""

from buttress._lazy import lazy_exports

# Not `from typing import TYPE_CHECKING`: typing alone would triple the cost of `import buttress`.
# Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from buttress.clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock
    from buttress.config import Settings, get_settings, load_settings
    from buttress.container import Container, Lifetime, Scope, get_container
    from buttress.errors import (
        BackendUnavailable,
        BulkheadFull,
        ButtressError,
        CircuitOpen,
        ConfigError,
        ConflictError,
        ContainerError,
        DeadlineExceeded,
        DependencyCycle,
        NotFoundError,
        QueueFull,
        QuotaExceeded,
        RateLimited,
        RetryExhausted,
        ScopeRequired,
        ServiceNotRegistered,
        ValidationError,
    )
    from buttress.events import Event, EventBus, Subscription, get_event_bus, publish, subscribe
    from buttress.observe.logging import bind_context, configure_logging, get_logger

_EXPORTS = {
    **dict.fromkeys(["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock"], "buttress.clock"),
    **dict.fromkeys(["Settings", "get_settings", "load_settings"], "buttress.config"),
    **dict.fromkeys(["Container", "Lifetime", "Scope", "get_container"], "buttress.container"),
    **dict.fromkeys(
        [
            "BackendUnavailable",
            "BulkheadFull",
            "ButtressError",
            "CircuitOpen",
            "ConfigError",
            "ConflictError",
            "ContainerError",
            "DeadlineExceeded",
            "DependencyCycle",
            "NotFoundError",
            "QueueFull",
            "QuotaExceeded",
            "RateLimited",
            "RetryExhausted",
            "ScopeRequired",
            "ServiceNotRegistered",
            "ValidationError",
        ],
        "buttress.errors",
    ),
    **dict.fromkeys(
        ["Event", "EventBus", "Subscription", "get_event_bus", "publish", "subscribe"], "buttress.events"
    ),
    **dict.fromkeys(["bind_context", "configure_logging", "get_logger"], "buttress.observe.logging"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "SYSTEM_CLOCK",
    "BackendUnavailable",
    "BulkheadFull",
    "ButtressError",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "ConflictError",
    "Container",
    "ContainerError",
    "DeadlineExceeded",
    "DependencyCycle",
    "Event",
    "EventBus",
    "FakeClock",
    "Lifetime",
    "NotFoundError",
    "QueueFull",
    "QuotaExceeded",
    "RateLimited",
    "RetryExhausted",
    "Scope",
    "ScopeRequired",
    "ServiceNotRegistered",
    "Settings",
    "Subscription",
    "SystemClock",
    "ValidationError",
    "bind_context",
    "configure_logging",
    "get_container",
    "get_event_bus",
    "get_logger",
    "get_settings",
    "load_settings",
    "publish",
    "subscribe",
]
