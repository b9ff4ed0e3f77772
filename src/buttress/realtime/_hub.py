"""The hub: one per event loop, it follows the log and hands each entry to the connections that want it.

Dispatch never waits: an entry is serialised once and appended to each matching connection's queue,
whose own writer sends it. A housekeeping tick closes connections whose token expired (within a
tick of ``exp``), that went idle or stalled, sends heartbeats, and runs the endpoints' feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from buttress.clock import Clock
from buttress.config import RealtimeSettings
from buttress.errors import BackendUnavailable
from buttress.realtime._auth import Identity
from buttress.realtime._connection import Connection
from buttress.realtime._entry import Entry, Position, encode_entry, encode_message, format_id
from buttress.realtime._log import TopicLog
from buttress.realtime._telemetry import RealtimeTelemetry

__all__ = ["PING", "TICK", "Feed", "Hub"]

logger = logging.getLogger("buttress.realtime")

TICK = 0.2
"""Seconds between housekeeping rounds: the bound on how late an expired token is closed."""

_REPLAY_PAGE = 500
_STOP_WAIT = 5.0  # seconds a stopping hub waits for its tasks (a blocked Redis read ends within ~1 s)
PING = encode_message("ping")


@dataclass(eq=False, slots=True)
class Feed:
    """A local topic built every ``interval`` seconds while someone follows it (not logged, not resumable)."""

    topic: str
    build: Callable[[bool], Mapping[str, Any]]
    interval: float = 1.0
    due: float = 0.0
    running: bool = False
    error_logged: bool = field(default=False)


class Hub:
    """Connections of one event loop, fed from the log's ``follow`` and the endpoints' feeds."""

    def __init__(
        self,
        log: TopicLog,
        *,
        settings: RealtimeSettings,
        telemetry: RealtimeTelemetry,
        clock: Clock,
    ) -> None:
        self.log = log
        self.settings = settings
        self.telemetry = telemetry
        self.clock = clock
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self._per_subject: dict[str, int] = {}
        self._routes: dict[str, tuple[Connection, ...]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = asyncio.Event()
        self._inbox: list[Entry] = []
        self._arrived = asyncio.Event()
        self.epoch: str | None = None
        self._position = 0  # of the newest entry dispatched
        self.idle_since = clock.monotonic()
        """When the last connection left (the injected clock's monotonic time); see ``Realtime.release``."""

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                self.loop.create_task(self._follow(), name="buttress-realtime-follow"),
                self.loop.create_task(self._deliver(), name="buttress-realtime-deliver"),
                self.loop.create_task(self._housekeep(), name="buttress-realtime-housekeeping"),
            ]

    async def ready(self) -> None:
        """Wait until the hub follows the log (so nothing appended from now on can be missed)."""
        self.start()
        await self._started.wait()

    def stop(self) -> None:
        """Cancel the hub's tasks (they end on the loop's next turns) and close what is still open."""
        self._cancel()

    async def aclose(self) -> None:
        """:meth:`stop`, and wait for the tasks to end (the log's follower closes its connections)."""
        tasks = self._cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_WAIT)
        with contextlib.suppress(Exception):  # the loop is stopping: its connections to the log go too
            await self.log.release_loop()

    def _cancel(self) -> list[asyncio.Task[None]]:
        """Cancel the tasks and close the connections; the tasks, for a caller that waits for them."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for connection in list(self.connections):
            connection.close(1001, "the server is stopping")
        return tasks

    async def _follow(self) -> None:
        followed: Position | None = None  # the newest entry handed to the inbox
        while True:
            try:
                if followed is None:
                    start = await self.log.read_after(Position("", 0), 0)  # the epoch and newest position
                    self.epoch, self._position = start.epoch, start.last
                    followed = Position(start.epoch, start.last)
                self._started.set()
                # After a failure the follower starts again where it stopped: what was appended
                # meanwhile still reaches the connections, late but not lost.
                async for entries in self.log.follow(followed):
                    self._inbox.extend(entries)
                    self._arrived.set()
                    followed = Position(entries[-1].epoch, entries[-1].position)
            except asyncio.CancelledError:
                raise
            except BackendUnavailable:
                self._started.set()  # connections go on: the log's follow reconnects by itself
                await asyncio.sleep(TICK)
            except Exception:
                logger.exception("realtime: following the topic log failed; starting again")
                await asyncio.sleep(TICK)

    async def _deliver(self) -> None:
        """Hand what the follower gathered to the connections, ``batch_window`` after the first of it."""
        window = self.settings.batch_window
        while True:
            await self._arrived.wait()
            if window:
                await asyncio.sleep(window)  # a burst arriving meanwhile leaves as one frame per client
            self._arrived.clear()
            entries, self._inbox = self._inbox, []
            try:
                self.dispatch(entries)
            except Exception:
                logger.exception("realtime: handing events to connections failed")

    # -- connections ---------------------------------------------------------------------------------

    def admit(self, connection: Connection) -> str | None:
        """Register ``connection``, or say why it cannot be (a connection limit)."""
        if len(self.connections) >= self.settings.max_connections:
            return f"this server holds its limit of {self.settings.max_connections} connections"
        refusal = self._count_subject(connection.subject)
        if refusal is not None:
            return refusal
        self.connections.add(connection)
        self.telemetry.connections[connection.transport].inc()
        self._routes.clear()
        return None

    def identify(self, connection: Connection, identity: Identity) -> str | None:
        """Give ``connection`` its identity (a first-message auth), or say which limit refuses it."""
        refusal = self._count_subject(identity.subject)
        if refusal is None:
            connection.identity = identity
        return refusal

    def _count_subject(self, subject: str | None) -> str | None:
        """Count one more connection of ``subject`` (anonymous: not counted), or say the limit refuses it."""
        if subject is None:
            return None
        count = self._per_subject.get(subject, 0)
        if count >= self.settings.max_connections_per_user:
            return f"this user holds the limit of {self.settings.max_connections_per_user} connections"
        self._per_subject[subject] = count + 1
        return None

    def leave(self, connection: Connection) -> None:
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        self.telemetry.connections[connection.transport].dec()
        subject = connection.subject
        if subject is not None:
            left = self._per_subject.get(subject, 1) - 1
            if left > 0:
                self._per_subject[subject] = left
            else:
                self._per_subject.pop(subject, None)
        unsent = connection.discard()
        if unsent:
            self.telemetry.dropped["closed"].inc(unsent)
        self._routes.clear()

    def subscriptions_changed(self) -> None:
        self._routes.clear()

    async def resume(self, connection: Connection, position: Position) -> None:
        """Replay what ``connection``'s patterns missed after ``position``, then let live entries through.

        Live entries arriving meanwhile are held and queued after the replay, minus those it covered.
        Raises :class:`BackendUnavailable` when the log cannot be read (the caller closes with 1013, so
        the client retries with the same id instead of silently missing events).
        """
        connection.replaying = True
        try:
            current = position
            while True:
                replay = await self.log.read_after(current, _REPLAY_PAGE)
                if replay.reset is not None:
                    connection.offer(
                        (encode_message("reset", reason=replay.reset, epoch=replay.epoch), None, None)
                    )
                    connection.epoch = replay.epoch
                    connection.position = replay.last
                    return
                for entry in replay.entries:
                    if connection.matches(entry.topic):
                        await connection.room()  # a replay waits for the writer: it never overflows
                        if connection.closing is not None:
                            return
                        self._queue(connection, entry, encode_entry(entry))
                    connection.epoch, connection.position = entry.epoch, entry.position
                if not replay.entries or replay.entries[-1].position >= replay.last:
                    connection.epoch = replay.epoch
                    connection.position = max(connection.position, current.position)
                    return
                current = Position(replay.epoch, replay.entries[-1].position)
        finally:
            connection.end_replay()

    def _queue(self, connection: Connection, entry: Entry, frame: str) -> None:
        if not connection.offer((frame, entry.id, entry.time)):
            self.telemetry.dropped["overflow"].inc()

    # -- dispatch ------------------------------------------------------------------------------------

    def dispatch(self, entries: Iterable[Entry]) -> None:
        routes = self._routes
        dropped = 0
        for entry in entries:
            if entry.epoch == self.epoch and entry.position > self._position + 1:
                self._skipped(entry.position - self._position - 1)
            self.epoch, self._position = entry.epoch, entry.position
            targets = routes.get(entry.topic)
            if targets is None:
                targets = routes[entry.topic] = tuple(c for c in self.connections if c.matches(entry.topic))
            if not targets:
                continue
            frame = encode_entry(entry)
            entry_id = entry.id
            for connection in targets:
                if not connection.offer_entry(entry, frame, entry_id):
                    dropped += 1
        if dropped:
            self.telemetry.dropped["overflow"].inc(dropped)

    def _skipped(self, count: int) -> None:
        """The log moved past entries this hub never got (it fell behind the retention): tell everyone."""
        logger.warning(
            "realtime: %d events passed this server by (it fell behind the log's retention)", count
        )
        last = format_id(self.epoch or "", self._position)
        for connection in self.connections:
            connection.missed(count, last)

    def broadcast(self, connections: Iterable[Connection], frame: str) -> None:
        for connection in connections:
            if not connection.offer((frame, None, None)):
                self.telemetry.dropped["overflow"].inc()

    # -- housekeeping --------------------------------------------------------------------------------

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.sweep(self.clock.time())
            except Exception:
                logger.exception("realtime: housekeeping failed")

    def sweep(self, now: float) -> None:
        """One housekeeping round at ``now`` (public so tests can drive it with their clock)."""
        settings = self.settings
        feeds: dict[Feed, list[Connection]] = {}
        for connection in self.connections:
            if connection.closing is not None:
                continue
            identity = connection.identity
            if identity is not None and identity.expires is not None and now >= identity.expires:
                connection.close(1008, "the token expired")
                continue
            if connection.transport == "ws" and now - connection.last_seen > settings.idle_timeout:
                connection.close(1001, "no message from the client within the idle timeout")
                continue
            since = connection.sending_since
            if since is not None and now - since > settings.stall_timeout:
                connection.close(1013, "the client stopped reading")
                continue
            if now - connection.last_ping >= settings.heartbeat:
                connection.last_ping = now
                connection.offer((PING, None, None))
            for feed in connection.feeds:
                if connection.matches(feed.topic):
                    feeds.setdefault(feed, []).append(connection)
        for feed, followers in feeds.items():
            if not feed.running and now >= feed.due:
                feed.running = True
                feed.due = now + feed.interval
                self.loop.create_task(self._run_feed(feed, followers))

    async def _run_feed(self, feed: Feed, followers: list[Connection]) -> None:
        try:
            levels = {connection.identity is not None for connection in followers}
            frames: dict[bool, str] = {}
            for admin in levels:
                data = await asyncio.to_thread(feed.build, admin)
                frames[admin] = encode_message(
                    "event", id=None, topic=feed.topic, offset=None, time=self.clock.time(), data=data
                )
            for connection in followers:
                if connection.closing is None:
                    connection.offer((frames[connection.identity is not None], None, None))
        except Exception:
            if not feed.error_logged:
                feed.error_logged = True
                logger.exception("realtime: the feed %r failed", feed.topic)
        finally:
            feed.running = False

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "queued": sum(connection.pending for connection in self.connections),
            "dropped": sum(connection.dropped for connection in self.connections),
        }
