"""buttress: the production layer Python services keep writing by hand."""

from buttress.clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock
from buttress.errors import (
    BackendUnavailable,
    BulkheadFull,
    ButtressError,
    CircuitOpen,
    ConfigError,
    ConflictError,
    DeadlineExceeded,
    NotFoundError,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    RetryExhausted,
    ValidationError,
)

__all__ = [
    "SYSTEM_CLOCK",
    "BackendUnavailable",
    "BulkheadFull",
    "ButtressError",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "ConflictError",
    "DeadlineExceeded",
    "FakeClock",
    "NotFoundError",
    "QueueFull",
    "QuotaExceeded",
    "RateLimited",
    "RetryExhausted",
    "SystemClock",
    "ValidationError",
]
