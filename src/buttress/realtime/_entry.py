"""One entry of the topic log, the ids clients resume from, and the JSON frames sent to clients."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buttress.errors import ValidationError

__all__ = ["Entry", "Position", "Replay", "encode_entry", "encode_message", "format_id", "parse_id"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class Entry:
    """An event as the log keeps it.

    ``position`` counts every entry of the log from 1 within one ``epoch``; ``offset`` counts the
    entries of ``topic`` alone, so a client can see a gap in one topic by itself. A new epoch (a
    fresh memory log, a Redis that lost its data) starts both counts again.
    """

    epoch: str
    position: int
    topic: str
    offset: int
    data: Mapping[str, Any]
    time: float

    @property
    def id(self) -> str:
        """What a client sends back to resume after this entry: ``<epoch>-<position>``."""
        return format_id(self.epoch, self.position)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a client stopped: the epoch and the position of the last entry it received."""

    epoch: str
    position: int


@dataclass(frozen=True, slots=True)
class Replay:
    """The answer to "what came after this position?".

    ``reset`` is None when ``entries`` are exactly what followed the position (possibly none), or the
    reason no replay is possible: ``epoch`` (the log started over since) or ``retention`` (entries
    after the position were already trimmed). ``last`` is the newest position of the log's epoch
    when it was read, so the caller knows where live delivery must take over.
    """

    epoch: str
    entries: tuple[Entry, ...]
    last: int
    reset: str | None = None


def format_id(epoch: str, position: int) -> str:
    return f"{epoch}-{position}"


def parse_id(value: object, *, field: str = "last_id") -> Position:
    """The :class:`Position` in a client's last id, or a :class:`ValidationError` naming ``field``."""
    if isinstance(value, str):
        epoch, _, number = value.rpartition("-")
        if epoch and number.isascii() and number.isdigit() and len(number) <= 18 and len(epoch) <= 64:
            return Position(epoch, int(number))
    raise ValidationError(
        f"{field} must be the id of an event this server sent, like 'k3f9a2c1-1042'; got {value!r}",
        field=field,
    )


def encode_entry(entry: Entry) -> str:
    """The ``event`` frame of an entry, serialised once and shared by every connection."""
    return _ENCODER.encode(
        {
            "type": "event",
            "id": entry.id,
            "topic": entry.topic,
            "offset": entry.offset,
            "time": entry.time,
            "data": entry.data,
        }
    )


def encode_message(kind: str, **fields: Any) -> str:
    """A control frame (``welcome``, ``subscribed``, ``reset``, ``gap``, ``ping``, ``error``...)."""
    return _ENCODER.encode({"type": kind, **fields})
