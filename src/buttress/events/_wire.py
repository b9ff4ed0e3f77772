"""The Redis transport's wire format and small pure helpers: JSON bodies, RESP packing, backoff."""

from __future__ import annotations

import json

from buttress.events._event import Event

__all__ = ["ENCODER", "backoff_delay", "pack_publishes", "parse_event"]

ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # built once: json.dumps() rebuilds it


def backoff_delay(failures: int, minimum: float, maximum: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures: doubling from ``minimum``, capped."""
    return min(maximum, minimum * 2.0 ** max(0, min(failures - 1, 60)))


def pack_publishes(batch: list[tuple[str, str]]) -> bytes:
    """RESP for one PUBLISH per (channel, body), ready to write to the socket in one call."""
    parts = []
    for channel, body in batch:
        channel_bytes, body_bytes = channel.encode(), body.encode()
        parts.append(
            b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
            % (len(channel_bytes), channel_bytes, len(body_bytes), body_bytes)
        )
    return b"".join(parts)


def parse_event(data: bytes) -> Event:
    doc = json.loads(data)
    payload = doc["payload"]
    if not isinstance(payload, dict):
        raise TypeError(f"payload is a {type(payload).__name__}, not an object")
    return Event(
        topic=str(doc["topic"]),
        payload=payload,
        time=float(doc["time"]),
        origin=str(doc["origin"]),
        id=str(doc["id"]),
    )
