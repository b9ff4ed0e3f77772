"""The Redis transport's wire format and small pure helpers: JSON bodies, RESP packing, URLs, backoff."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from buttress.errors import MASK
from buttress.events._event import Event

__all__ = ["ENCODER", "backoff_delay", "mask_url", "pack_publishes", "parse_event", "url_scheme"]

ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # built once: json.dumps() rebuilds it


def mask_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` query parameter) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"  # cannot tell where a password would be, so show none of it
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = parts.query
    if "password=" in query:
        pairs = [(k, MASK if k == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def url_scheme(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    try:
        return urlsplit(url).scheme
    except ValueError:
        return None


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
