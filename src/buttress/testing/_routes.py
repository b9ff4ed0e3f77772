"""The answers every domain gives: a JSON echo, ``/bytes/{n}`` and ``/status/{code}``.

An answer is plain data (status, headers, body); the connection decides how to send it (at once, after
a delay, or in slow chunks). Large ``/bytes`` bodies are described by their length and produced in
64 KiB pieces of a repeating pattern, so 256 MiB never sits in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from buttress.testing._fate import Fate, retry_after_value
from buttress.testing._fault import Fault
from buttress.testing._http import Request

__all__ = ["MAX_BYTES", "PATTERN", "Answer", "answer", "pattern_pieces"]

PATTERN: Final = b"buttress"
MAX_BYTES: Final = 256 * 1024 * 1024
_BLOCK: Final = PATTERN * 8192
"""64 KiB of the pattern: every piece of a ``/bytes`` body is a slice of it."""
_PIECE: Final = len(_BLOCK) - len(PATTERN)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response to send; ``body`` None means ``length`` bytes of the pattern, made as it is sent."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | None
    length: int


def answer(domain: str, request: Request, path: str, *, n: int, fate: Fate, fault: Fault) -> Answer:
    """The response to a request whose fate is to be answered."""
    if fate.status is not None:
        status, content_type, body, length = _json(fate.status, {"error": "injected", "status": fate.status})
    elif path.startswith("/status/"):
        status, content_type, body, length = _status_route(domain, path)
    elif path.startswith("/bytes/"):
        status, content_type, body, length = _bytes_route(path, fault.status)
    else:
        document = {"domain": domain, "path": path, "method": request.method, "n": n}
        document["body_bytes"] = request.body_bytes
        status, content_type, body, length = _json(fault.status, document)
    headers = [("x-upstream-request", str(n))]
    if status in (204, 304):  # no body allowed, so no body headers either
        body, length = b"", 0
    else:
        headers += [("content-type", content_type), ("content-length", str(length))]
    retry_after = fate.retry_after if fate.status is not None else retry_after_value(fault, status)
    if retry_after is not None:
        headers.append(("retry-after", retry_after))
    key = request.headers.get("idempotency-key")
    if key is not None:
        headers.append(("idempotency-key", key))
    return Answer(status, headers, body, length)


_Route = tuple[int, str, bytes | None, int]


def _json(status: int, document: dict[str, object]) -> _Route:
    body = json.dumps(document, separators=(",", ":")).encode()
    return status, "application/json", body, len(body)


def _status_route(domain: str, path: str) -> _Route:
    code = path[len("/status/") :]
    if code.isdigit() and code.isascii() and 200 <= int(code) <= 599:
        return _json(int(code), {"domain": domain, "path": path, "status": int(code)})
    return _json(400, {"error": "bad_request", "detail": "use /status/{code} with a code from 200 to 599"})


def _bytes_route(path: str, status: int) -> _Route:
    text = path[len("/bytes/") :]
    if not (text.isdigit() and text.isascii() and int(text) <= MAX_BYTES):
        detail = f"use /bytes/{{n}} with n from 0 to {MAX_BYTES}"
        return _json(400, {"error": "bad_request", "detail": detail})
    length = int(text)
    return status, "application/octet-stream", _BLOCK[:length] if length <= _PIECE else None, length


def pattern_pieces(start: int, stop: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``stop`` of the endless pattern, in pieces of at most 64 KiB."""
    while start < stop:
        offset = start % len(PATTERN)
        size = min(stop - start, _PIECE)
        yield _BLOCK[offset : offset + size]
        start += size
