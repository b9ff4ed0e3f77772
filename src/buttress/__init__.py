"""buttress: the production layer Python services keep writing by hand.

The names here are the foundation every capability shares: settings, errors, the container, the event bus,
logging and the clock. Capabilities keep their own modules (``buttress.observe.metrics``,
``buttress.observe.health``, ...), so importing ``buttress`` stays light.
"""

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
