"""One client's connection: its patterns, its bounded queue and the writer that drains it.

The hub only ever appends to a connection's queue (``offer``), which never waits; the writer sends
whatever has piled up as one frame. So a client that reads slowly, or not at all, fills its own queue
and nobody else's: it then loses messages and is told so with a ``gap`` marker (or is closed with 1013,
``overflow="close"``), and a writer that has not finished a send for ``stall_timeout`` is closed.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from buttress.events import Pattern
from buttress.realtime._auth import Identity
from buttress.realtime._entry import Entry, encode_message, format_id

if TYPE_CHECKING:
    from buttress.realtime._hub import Feed

__all__ = ["CloseRequest", "Connection", "Item"]

_ids = itertools.count(1)

Item = tuple[str, str | None, float | None]
"""A queued message: its JSON text, its entry id (None for control messages and feeds), when published."""


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Why the hub wants a connection closed: a WebSocket close code and a short reason."""

    code: int
    reason: str


class Connection:
    """What the hub knows of one client, and the queue between the hub and the client's writer."""

    def __init__(
        self,
        *,
        transport: str,
        identity: Identity | None,
        queue_size: int,
        overflow: str,
        now: float,
    ) -> None:
        self.id = f"c{next(_ids)}"
        self.transport = transport
        self.identity = identity
        self.patterns: dict[str, Pattern] = {}
        self._queue: deque[Item] = deque()
        self._queue_size = queue_size
        self._overflow = overflow
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = (
            None  # a replay's, while it waits for room  # the writer's, while it waits for messages
        )
        self.closed = asyncio.Event()
        self.dropped = 0
        self._gap = 0  # dropped since the last gap marker
        self._gap_after: str | None = None  # id of the last entry queued before the drops
        self.epoch: str | None = None  # of the newest entry queued
        self.position = 0
        self.replaying = False
        self.held: list[tuple[Entry, str]] = []
        self.last_seen = now
        self.last_ping = now
        self.sending_since: float | None = None
        self.closing: CloseRequest | None = None
        self.feeds: tuple[Feed, ...] = ()

    @property
    def subject(self) -> str | None:
        return None if self.identity is None else self.identity.subject

    @property
    def pending(self) -> int:
        return len(self._queue)

    def matches(self, topic: str) -> bool:
        return any(pattern.matches(topic) for pattern in self.patterns.values())

    # -- the hub's side: never waits ----------------------------------------------------------------

    def offer_entry(self, entry: Entry, frame: str, entry_id: str | None = None) -> bool:
        """Queue a logged entry unless this connection already has it; False when it was dropped."""
        if self.replaying:
            if len(self.held) < self._queue_size:
                self.held.append((entry, frame))
                return True
            if not self._gap:  # held past the queue's size: the rest is a gap, said after the held ones
                self._gap_after = self.held[-1][0].id
            self._gap += 1
            self.dropped += 1
            return False
        if entry.epoch == self.epoch and entry.position <= self.position:
            return True  # replayed already
        self.epoch = entry.epoch
        self.position = entry.position
        return self.offer((frame, entry_id if entry_id is not None else entry.id, entry.time))

    def offer(self, item: Item) -> bool:
        """Queue ``item``; False when the queue is full (the item is dropped and counted)."""
        if self.closing is not None:
            return False
        queue = self._queue
        if len(queue) >= self._queue_size:
            self.dropped += 1
            if self._overflow == "close":
                self.close(1013, "the client reads too slowly: its queue overflowed")
                return False
            if not self._gap:
                self._gap_after = self._last_queued_id()
            self._gap += 1
            return False
        queue.append(item)
        self._wake()
        return True

    def missed(self, count: int, last_id: str) -> None:
        """Entries went by unseen (the hub fell behind): the next batch carries a ``gap`` marker."""
        if not self._gap:
            self._gap_after = last_id
        self._gap += count
        self.dropped += count
        self._wake()

    async def room(self) -> None:
        """Wait until the queue has room again (the writer took a batch) or the connection closes."""
        while len(self._queue) >= self._queue_size and self.closing is None:
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await self._drained
            finally:
                self._drained = None

    def _wake(self) -> None:
        """Resume the writer if it waits (a bare future: cheaper than an Event, set once per message)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end_replay(self) -> None:
        """Live entries held while the replay was read: queue those it did not cover."""
        self.replaying = False
        held, self.held = self.held, []
        for entry, frame in held:
            self.offer_entry(entry, frame)

    def close(self, code: int, reason: str) -> None:
        """Ask the writer to stop and the endpoint to close with ``code`` (first request wins)."""
        if self.closing is None:
            self.closing = CloseRequest(code, reason)
        self._wake()
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)
        self.closed.set()

    def _last_queued_id(self) -> str | None:
        for _frame, entry_id, _time in reversed(self._queue):
            if entry_id is not None:
                return entry_id
        return None if self.epoch is None else format_id(self.epoch, self.position)

    # -- the writer's side ---------------------------------------------------------------------------

    async def next_batch(self) -> list[Item] | None:
        """Everything queued since the last batch, as soon as there is something; None once closing."""
        queue = self._queue
        while self.closing is None:
            if not queue and not self._gap:
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            batch = list(queue)
            queue.clear()
            drained = self._drained
            if drained is not None and not drained.done():
                drained.set_result(None)
            if self._gap:  # every drop came after what was queued: say so after it, and at once
                batch.append((encode_message("gap", dropped=self._gap, last_id=self._gap_after), None, None))
                self._gap = 0
            return batch
        return None

    async def batches(self) -> AsyncIterator[list[Item]]:
        """:meth:`next_batch` until the connection closes."""
        while (batch := await self.next_batch()) is not None:
            yield batch

    def discard(self) -> int:
        """Drop what is still queued (the connection is gone); how many messages that was."""
        count = len(self._queue)
        self._queue.clear()
        return count
