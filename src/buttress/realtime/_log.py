"""The topic log's contract, and the in-memory log (a ring per process).

The log is what makes resume possible: every recorded event gets a position, and a client that
reconnects with the id of the last entry it saw is replayed what came after, or told plainly that
this is no longer possible.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

from buttress.events import TransportInfo
from buttress.health_types import CheckResult
from buttress.realtime._entry import Entry, Position, Replay

__all__ = ["MemoryTopicLog", "TopicLog", "new_epoch"]


def new_epoch() -> str:
    """A fresh epoch: 8 random hex digits, so two logs never look like one."""
    return secrets.token_hex(4)


@runtime_checkable
class TopicLog(Protocol):
    """Positions, retention and replay for recorded events.

    The contract, checked for every log by ``tests/conformance/test_topic_log_conformance.py``:

    - ``append(topic, data, time)`` may be called from any thread, never blocks on I/O and never
      raises for an outage: the entry is queued (bounded; the oldest is dropped and counted when
      full) and written when the backend is reachable. Positions and per-topic offsets are assigned
      by the backend, so appends from several processes share one order.
    - ``follow(after)`` yields, on the caller's event loop, lists of entries in position order, starting
      after ``after`` when it is a position of the current epoch, else after the newest entry at the
      time it is called (so a caller that read the newest position first misses nothing in between).
      It never ends by itself and survives
      outages: after the backend lost its data it carries on with the new epoch's entries from
      position 1, so nothing appended after the loss is skipped.
    - ``read_after(position, limit)`` returns up to ``limit`` entries after ``position`` with a
      :class:`Replay`; ``reset`` says when that is impossible (another epoch, or trimmed).
      It raises :class:`~buttress.errors.BackendUnavailable` while the backend is unreachable.
    - ``retention`` entries at least are kept (the newest ones).
    - ``release_loop()`` (on an event loop that is stopping, such as a server's) closes what the log keeps
      for that loop (connections); the log stays open, and a later follow or replay on that loop
      opens what it needs again.
    - ``close()`` is idempotent; ``status()``, ``info()`` and ``check()`` keep answering after it.

    Outage policy: realtime events are notifications. While the backend is down the log keeps the
    newest appends in memory (bounded), followers wait and reconnect by themselves, ``check()`` warns
    and never fails.
    """

    retention: int

    def append(self, topic: str, data: Mapping[str, Any], time: float) -> None: ...

    def follow(self, after: Position | None = None) -> AsyncIterator[list[Entry]]: ...

    async def read_after(self, position: Position, limit: int) -> Replay: ...

    async def release_loop(self) -> None: ...

    def close(self) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def info(self) -> TransportInfo: ...

    def check(self) -> CheckResult: ...


class MemoryTopicLog:
    """The newest ``retention`` entries of this process, in a ring; the epoch is new per log."""

    def __init__(self, *, retention: int = 10_000) -> None:
        self.retention = retention
        self.epoch = new_epoch()
        self._ring: deque[Entry] = deque(maxlen=retention)
        self._offsets: dict[str, int] = {}
        self._position = 0
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._closed = False

    def append(self, topic: str, data: Mapping[str, Any], time: float) -> None:
        with self._lock:
            if self._closed:
                return
            self._position += 1
            offset = self._offsets.get(topic, 0) + 1
            self._offsets[topic] = offset
            self._ring.append(Entry(self.epoch, self._position, topic, offset, data, time))
            waiters = tuple(self._waiters)
        for loop, wake in waiters:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # that loop is closed; its follower is gone
                continue

    async def follow(self, after: Position | None = None) -> AsyncIterator[list[Entry]]:
        wake = asyncio.Event()
        waiter = (asyncio.get_running_loop(), wake)
        with self._lock:
            seen = self._position
            if after is not None and after.epoch == self.epoch and after.position < seen:
                seen = after.position
                wake.set()
            self._waiters.append(waiter)
        try:
            while True:
                await wake.wait()
                wake.clear()
                with self._lock:
                    size = len(self._ring)
                    fresh = min(self._position - seen, size)
                    batch = [self._ring[index] for index in range(size - fresh, size)]
                    seen = self._position
                if batch:
                    yield batch
        finally:
            with self._lock:
                self._waiters.remove(waiter)

    async def read_after(self, position: Position, limit: int) -> Replay:
        with self._lock:
            last = self._position
            if position.epoch != self.epoch or position.position > last:
                return Replay(self.epoch, (), last, reset="epoch")
            oldest = self._ring[0].position if self._ring else last + 1
            if position.position + 1 < oldest:
                return Replay(self.epoch, (), last, reset="retention")
            start = position.position + 1 - oldest
            entries = tuple(self._ring[index] for index in range(start, min(len(self._ring), start + limit)))
        return Replay(self.epoch, entries, last)

    async def release_loop(self) -> None:
        """Nothing to release: the ring keeps no per-loop resources."""

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "log": "memory",
                "connected": True,
                "epoch": self.epoch,
                "position": self._position,
                "retained": len(self._ring),
                "retention": self.retention,
            }

    def info(self) -> TransportInfo:
        return TransportInfo("memory", available=True, detail="in-process ring: resume within this process")

    def check(self) -> CheckResult:
        return CheckResult("pass", f"memory topic log: the newest {self.retention} events of this process")
