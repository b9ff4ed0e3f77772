"""A private metrics registry and event bus for one test, with what the strategies reported."""

from __future__ import annotations

from typing import Any

from buttress.events import Event, EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._telemetry import CALLS_METRIC


class Observed:
    """A private metrics registry and event bus, with the events published so far."""

    def __init__(self, *patterns: str) -> None:
        self.registry = MetricsRegistry()
        self.bus = EventBus()
        self._events: list[Event] = []
        for pattern in patterns or ("resilience.**",):
            self.bus.subscribe(pattern, self._events.append)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        self.bus.flush()
        return [(event.topic, dict(event.payload)) for event in self._events]

    def metric(self, name: str) -> list[dict[str, Any]]:
        family = self.registry.snapshot().get(name)
        return [] if family is None else family["series"]

    def calls(self, strategy: str) -> dict[str, float]:
        """``buttress_resilience_calls_total`` of one strategy, by outcome."""
        series = self.metric(CALLS_METRIC)
        return {s["labels"]["outcome"]: s["value"] for s in series if s["labels"]["strategy"] == strategy}
