"""The realtime metrics.

Labels stay bounded: ``transport`` is ``ws`` or ``sse``, ``reason`` a fixed set.

- ``buttress_realtime_connections{transport}``: open connections of this process;
- ``buttress_realtime_messages_sent_total{transport}``: messages written to clients (events and control);
- ``buttress_realtime_messages_dropped_total{reason}``: messages a connection never got (``overflow``: its
  queue was full; ``closed``: it closed with messages still queued);
- ``buttress_realtime_rejected_total{reason}``: connections or subscriptions refused (``auth``,
  ``forbidden``, ``limit``, ``invalid``);
- ``buttress_realtime_delivery_seconds``: from an event's publication to its write to a client, for the
  oldest event of a write, sampled (a connection's first write, then one in eight): a histogram update per
  message would cost a tenth of the write itself.
"""

from __future__ import annotations

from typing import Any

from buttress.observe.metrics import MetricsRegistry, get_metrics

__all__ = ["RealtimeTelemetry"]

_DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RealtimeTelemetry:
    """Counters and histograms of one process's realtime hub; children looked up once, not per message."""

    def __init__(self, metrics: MetricsRegistry | None = None) -> None:
        registry = metrics or get_metrics()
        connections = registry.gauge(
            "buttress_realtime_connections", "Open realtime connections.", labels=("transport",)
        )
        sent = registry.counter(
            "buttress_realtime_messages_sent_total",
            "Messages written to realtime clients.",
            labels=("transport",),
        )
        self.connections = {name: connections.labels(transport=name) for name in ("ws", "sse")}
        self.sent = {name: sent.labels(transport=name) for name in ("ws", "sse")}
        dropped = registry.counter(
            "buttress_realtime_messages_dropped_total",
            "Messages a realtime connection never got, by reason.",
            labels=("reason",),
        )
        self.dropped = {name: dropped.labels(reason=name) for name in ("overflow", "closed")}
        rejected = registry.counter(
            "buttress_realtime_rejected_total",
            "Realtime connections or subscriptions refused, by reason.",
            labels=("reason",),
        )
        self.rejected = {
            name: rejected.labels(reason=name) for name in ("auth", "forbidden", "limit", "invalid")
        }
        self.delivery: Any = registry.histogram(
            "buttress_realtime_delivery_seconds",
            "Seconds from an event's publication to its write to a realtime client.",
            buckets=_DELIVERY_BUCKETS,
        )
