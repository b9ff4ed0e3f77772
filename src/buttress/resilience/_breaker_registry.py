"""Keyed circuit breakers: one per upstream (host, tenant, route), created on first use.

``breakers.get("api.example.com")`` returns the same :class:`CircuitBreaker` every time, even when
threads race for a new key. Defaults given to the registry apply to every breaker it creates; keyword
overrides to :meth:`BreakerRegistry.get` apply only when that call creates the breaker.
"""

from __future__ import annotations

import difflib
import inspect
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.resilience._breaker import BreakerSnapshot, CircuitBreaker, check_filter
from buttress.resilience._breaker_state import BreakerConfig
from buttress.resilience._decorate import check_name

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry
    from buttress.resilience._redis_state import RedisState

__all__ = ["BreakerRegistry"]

_SHARED: Final = frozenset({"self", "name", "store", "clock", "metrics", "events"})
OPTIONS: Final = tuple(p for p in inspect.signature(CircuitBreaker.__init__).parameters if p not in _SHARED)
"""The CircuitBreaker keyword arguments a registry accepts as defaults and overrides."""


def _check_options(options: Mapping[str, Any]) -> None:
    """Unknown names and bad values fail when given, not when a breaker is first needed."""
    for option in options:
        if option not in OPTIONS:
            close = difflib.get_close_matches(option, OPTIONS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValidationError(
                f"{option!r} is not a circuit breaker option; {hint}the options are {', '.join(OPTIONS)}",
                field=option,
            )
    BreakerConfig(**{k: v for k, v in options.items() if k not in ("record", "ignore")})
    for field in ("record", "ignore"):
        if field in options:
            check_filter(options[field], field)


class BreakerRegistry:
    """Circuit breakers by key, sharing a store, clock, metrics, events and default settings."""

    def __init__(
        self,
        *,
        store: Literal["memory"] | RedisState = "memory",
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
        **defaults: Any,
    ) -> None:
        _check_options(defaults)
        self.store = store
        self.clock = clock
        self.defaults: dict[str, Any] = dict(defaults)
        self._metrics = metrics
        self._events = events
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BreakerRegistry({len(self._breakers)} breakers)"

    def get(self, key: str, **overrides: Any) -> CircuitBreaker:
        """The breaker of ``key``, created with the defaults and ``overrides`` on first use."""
        breaker = self._breakers.get(key)
        if breaker is not None:
            return breaker
        check_name(key, "key")
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                if overrides:
                    _check_options(overrides)
                breaker = CircuitBreaker(
                    key,
                    **{**self.defaults, **overrides},
                    store=self.store,
                    clock=self.clock,
                    metrics=self._metrics,
                    events=self._events,
                )
                self._breakers[key] = breaker
        return breaker

    def find(self, key: str) -> CircuitBreaker | None:
        """The breaker of ``key`` if one was created, else None (never creates one)."""
        return self._breakers.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._breakers

    def __iter__(self) -> Iterator[str]:
        """The keys, in creation order (like a dict)."""
        return iter(list(self._breakers))

    def __len__(self) -> int:
        return len(self._breakers)

    def snapshot(self) -> list[BreakerSnapshot]:
        """Every breaker's snapshot, in creation order (one round trip each with the Redis store)."""
        return [breaker.snapshot() for breaker in list(self._breakers.values())]
