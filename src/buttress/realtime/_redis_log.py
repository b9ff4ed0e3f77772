"""The topic log on Redis Streams: one order for every process on the same Redis, replay from any of them.

Keys share one hash tag, ``{<prefix>}``, so a Redis Cluster keeps them on one node and the scripts may
touch them together: ``{<prefix>}:stream`` holds every topic's entries (stream id ``<position>-0``),
``{<prefix>}:offsets`` each topic's count, ``{<prefix>}:position`` the newest position and
``{<prefix>}:epoch`` the name of the data's current life. A Redis that lost its data has no epoch key; the
first append after that starts a new epoch, and positions and offsets count from 1 again.

**Appends** never wait on Redis: :meth:`RedisTopicLog.append` serialises the entry and queues it in a
bounded outbox (the oldest is dropped and counted when it is full). A sender thread writes the outbox in
batches, one ``EVALSHA`` of ``realtime_append.lua`` per batch on a dedicated connection (on a Redis
Cluster, through the cluster client, which sends it to the primary of the log's slot). A batch that
fails stays with the sender, which retries it with capped exponential backoff on the injected clock, so
what was appended while Redis was down is written once it is back. Batches are numbered per sender (the
last number written is kept in ``{<prefix>}:done:<sender>`` for a day) and the script skips one it has
already written, so a batch resent after a lost reply is not written twice. Each entry names its batch:
a batch whose reply was lost *with* the old Redis is written again in the new epoch (it might never have
been written), and a follower that yielded it in the old epoch skips it there.

**Followers** run on the caller's event loop: each round trip reads the epoch key and then blocks in
``XREAD`` for up to a second. When the epoch differs from the one the follower was reading, Redis lost
its data: the follower starts again from the new epoch's first entry, so nothing appended after the loss
is skipped. Outages are ridden out with the Redis layer's reconnect backoff, so a follower is back at
most ``max_backoff`` after Redis is. A follower that falls more than ``retention`` entries behind the
writers reads on from the oldest entry kept: its positions jump, and that jump is the only sign.

**Replays** (:meth:`RedisTopicLog.read_after`) read the epoch, the newest position, the oldest entry kept
and the entries asked for in one script (``realtime_replay.lua``: atomic on a cluster too), and raise
:class:`~buttress.errors.BackendUnavailable` while Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

from buttress._redis import (
    DEFAULT_TIMEOUT,
    UNAVAILABLE,
    PubSubConnections,
    RedisConnection,
    Script,
    check_prefix,
    check_url,
    execute,
    mask_text,
    mask_url,
    topology,
)
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import BackendUnavailable, ValidationError
from buttress.events import TransportInfo
from buttress.health_types import CheckResult
from buttress.realtime._entry import Entry, Position, Replay
from buttress.realtime._log import new_epoch

__all__ = ["RedisTopicLog"]

logger = logging.getLogger("buttress.realtime")

_APPEND = Script.file("realtime_append")
_REPLAY = Script.file("realtime_replay")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_BLOCK_MS = 1000  # how long one XREAD of a follower waits for news (also how soon it notices close())
_FOLLOW_COUNT = 500  # entries per XREAD
_RECENT_BATCHES = 64  # batch ids a follower remembers, to skip a batch written again in a new epoch
_IDLE_CHECK = 10.0  # seconds without traffic after which the sender PINGs before writing a batch
_POLL = 0.1  # how often a backing-off sender looks for close()
_CONNECTING, _CONNECTED, _DISCONNECTED = "connecting", "connected", "disconnected"


def _check_count(value: object, field: str, meaning: str, example: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(
            f"{field} must be a whole number >= 1 ({meaning}), got {value!r}; e.g. {example}", field=field
        )
    return value


def _check_seconds(value: object, field: str, example: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError(
            f"{field} must be a number of seconds > 0, got {value!r}; e.g. {example}", field=field
        )
    return float(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(fields: Mapping[Any, Any]) -> dict[str, Any]:
    return {_text(key): value for key, value in fields.items()}


def _entry(entry_id: Any, values: Mapping[str, Any]) -> Entry:
    """An :class:`Entry` from one stream entry (``<position>-0`` and its fields, keys as str)."""
    return Entry(
        epoch=_text(values["epoch"]),
        position=int(_text(entry_id).partition("-")[0]),
        topic=_text(values["topic"]),
        offset=int(values["offset"]),
        data=json.loads(values["data"]),
        time=float(values["time"]),
    )


def _raw_entries(reply: Any) -> list[tuple[Any, dict[str, Any]]]:
    """The (id, fields) of an XRANGE reply, or of an XREAD reply on one stream (RESP2 or RESP3 shape)."""
    if not reply:
        return []
    if isinstance(reply, dict):  # XREAD, RESP3: {stream: [entries]} (or [[entries]] in some versions)
        (reply,) = reply.values()
        if reply and isinstance(reply[0], list) and reply[0] and isinstance(reply[0][0], list | tuple):
            reply = reply[0]
    elif isinstance(reply[0], list | tuple) and len(reply[0]) == 2 and isinstance(reply[0][1], list):
        reply = reply[0][1]  # XREAD, RESP2: [[stream, [entries]]]
    return [(entry_id, _fields(fields)) for entry_id, fields in reply]


def _stream_entries(reply: Any) -> list[Entry]:
    return [_entry(entry_id, values) for entry_id, values in _raw_entries(reply)]


def _script_entries(reply: Any) -> list[Entry]:
    """Entries as a script returns them: ``[id, [field, value, ...]]`` each."""
    return [
        _entry(entry_id, _fields(dict(zip(flat[::2], flat[1::2], strict=True)))) for entry_id, flat in reply
    ]


class _Batches:
    """The batches a follower saw lately, so it skips one written again after Redis lost its data.

    A sender whose reply was lost with the old Redis cannot know whether its batch was written, so it
    writes it again in the new epoch; a follower that already yielded it in the old epoch skips it.
    """

    __slots__ = ("_before", "_recent")

    def __init__(self) -> None:
        self._recent: deque[str] = deque(maxlen=_RECENT_BATCHES)  # newest last
        self._before: frozenset[str] = frozenset()

    def new_epoch(self) -> None:
        self._before = frozenset(self._recent)
        self._recent.clear()

    def keep(self, raw: list[tuple[Any, dict[str, Any]]]) -> list[Entry]:
        entries = []
        recent, before = self._recent, self._before
        for entry_id, values in raw:
            batch = _text(values.get("batch", ""))
            if batch and (not recent or recent[-1] != batch):
                recent.append(batch)
            if batch not in before:
                entries.append(_entry(entry_id, values))
        return entries


def _cancelled() -> bool:
    """Whether the running task was asked to stop (a cancellation some library code swallowed)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _backoff(failures: int, minimum: float, maximum: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures: doubling from ``minimum``, capped."""
    return min(maximum, minimum * 2.0 ** max(0, min(failures - 1, 60)))


class _Routed:
    """The sender's connection on a Redis Cluster: the cluster client, used like one raw connection.

    A raw connection reaches one node, and the log's slot may move to another (a failover); the
    cluster client sends each command to the primary that serves its keys now, following ``MOVED``.
    A command runs when it is sent; its failure is raised there, as a raw connection's would be on read.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._reply: Any = None

    def send_command(self, *args: Any) -> None:
        self._reply = self._client.execute_command(*args)

    def read_response(self) -> Any:
        return self._reply

    def disconnect(self) -> None:
        """Nothing to close: the client is the connection's, shared with the log's other calls."""


class RedisTopicLog:
    """The :class:`~buttress.realtime.TopicLog` of every process on the Redis at ``url`` and ``prefix``.

    ``retention`` entries at least are kept (the stream is trimmed approximately, a node at a time).
    ``outbox_size`` bounds the entries waiting for Redis, ``batch_size`` the entries written per round
    trip. ``min_backoff``/``max_backoff`` pace reconnection (seconds, doubling, capped) on ``clock``; the
    cap bounds how long after a Redis restart followers and the sender are back. ``socket_timeout``
    bounds connecting and each reply.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "buttress:realtime",
        retention: int = 10_000,
        outbox_size: int = 10_000,
        batch_size: int = 500,
        clock: Clock = SYSTEM_CLOCK,
        min_backoff: float = 0.05,
        max_backoff: float = 1.0,
        socket_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        check_url(url, "redis_url")
        check_prefix(prefix)
        self.retention = _check_count(retention, "retention", "entries the log keeps for replay", 10_000)
        self._outbox_size = _check_count(outbox_size, "outbox_size", "entries waiting for Redis", 10_000)
        self._batch_size = _check_count(batch_size, "batch_size", "entries written per round trip", 500)
        self._min_backoff = _check_seconds(min_backoff, "min_backoff", 0.05)
        self._max_backoff = _check_seconds(max_backoff, "max_backoff", 1.0)
        if self._max_backoff < self._min_backoff:
            raise ValidationError(
                f"max_backoff must be >= min_backoff ({min_backoff!r}), got {max_backoff!r}; e.g. 1.0",
                field="max_backoff",
            )
        timeout = _check_seconds(socket_timeout, "socket_timeout", DEFAULT_TIMEOUT)
        self._url = url
        self.url = mask_url(url)
        self.prefix = prefix
        tag = "{" + prefix + "}"
        self._stream, self._offsets = f"{tag}:stream", f"{tag}:offsets"
        self._epoch_key, self._position_key = f"{tag}:epoch", f"{tag}:position"
        self._tag = tag
        self._done_key = ""  # named per sender thread (_start_sender): a forked child numbers its own batches
        self._clock = clock
        self._socket_timeout = timeout
        self._redis = self._connection(url, timeout)
        # Followers block in XREAD for up to _BLOCK_MS: their replies may take that much longer.
        self._reader = self._connection(url, timeout + _BLOCK_MS / 1000)
        self._connections = PubSubConnections(url, timeout=timeout, url_field="redis_url")
        self._cluster = topology(url) == "cluster"
        self._noscript: type[Exception] = importlib.import_module("redis.exceptions").NoScriptError
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._changed = threading.Condition(self._lock)
        self._outbox: deque[tuple[str, str, str]] = deque()
        self._inflight = 0
        self._stopping = False
        self._sender_idle = True
        self._state = _CONNECTING
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._written = 0
        self._dropped = 0
        self._failed = 0
        self._batches = 0
        self._epoch: str | None = None
        self._position = 0
        self._followers: dict[asyncio.AbstractEventLoop, int] = {}
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._start_sender()

    def _connection(self, url: str, timeout: float) -> RedisConnection:
        return RedisConnection(
            url,
            prefix=self.prefix,
            timeout=timeout,
            clock=self._clock,
            reconnect_min=self._min_backoff,
            reconnect_max=self._max_backoff,
            scripts=(_APPEND, _REPLAY),
            url_field="redis_url",
        )

    def __repr__(self) -> str:
        return f"RedisTopicLog({self.url!r}, prefix={self.prefix!r})"

    # -- appending -----------------------------------------------------------------------------------

    def append(self, topic: str, data: Mapping[str, Any], time: float) -> None:
        """Queue an entry for the sender thread; a payload that is not JSON raises here, in the caller."""
        try:
            body = _ENCODER.encode(data)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"data for topic {topic!r} cannot be kept in the Redis topic log ({exc}); entries are "
                "JSON: use dicts with string keys, lists, str, int, finite float, bool and None",
                field="data",
                context={"topic": topic},
            ) from None
        if self._pid != os.getpid():  # a forked child inherits no sender thread
            self._start_sender()
        with self._lock:
            if self._stopping:
                self._dropped += 1
                return
            if len(self._outbox) >= self._outbox_size:
                self._outbox.popleft()
                self._dropped += 1
            self._outbox.append((topic, repr(float(time)), body))
            if self._sender_idle:
                self._sender_idle = False
                self._has_work.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued entry is written (False if ``timeout`` ran out, or the log is closed)."""
        with self._lock:
            return (
                self._changed.wait_for(
                    lambda: self._stopping or (not self._outbox and self._inflight == 0), timeout
                )
                and not self._stopping
            )

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the sender is connected to Redis (for tests and start-up probes)."""
        with self._lock:
            return self._changed.wait_for(lambda: self._stopping or self._state == _CONNECTED, timeout) and (
                not self._stopping
            )

    def wait_disconnected(self, timeout: float | None = None) -> bool:
        """Block until the sender has found Redis unreachable (for tests and health probes)."""
        with self._lock:
            return self._changed.wait_for(lambda: self._state == _DISCONNECTED, timeout)

    def _start_sender(self) -> None:
        with self._lock:
            if self._pid == os.getpid() or self._stopping:
                return
            self._pid = os.getpid()
            self._done_key = f"{self._tag}:done:{new_epoch()}{new_epoch()}"
            self._batches = 0
            self._outbox.clear()  # a parent's entries are the parent's to write
            self._inflight = 0
            self._sender_idle = True
            self._thread = threading.Thread(
                target=self._run_sender, name="buttress-realtime-log", daemon=True
            )
            self._thread.start()

    def _run_sender(self) -> None:
        connection: Any = None
        failures = 0
        last_used = 0.0
        batch: list[tuple[str, str, str]] = []
        number = 0
        try:
            while not self._stopping:
                if connection is None:
                    try:
                        connection = self._connect()
                    except Exception as exc:  # noqa: BLE001 - any failure means "not connected now"
                        failures += 1
                        self._set_disconnected(exc)
                        self._pause(_backoff(failures, self._min_backoff, self._max_backoff))
                        continue
                    failures = 0
                    last_used = self._clock.monotonic()
                    self._set_connected()
                if not batch:
                    batch, number = self._next_batch()
                    if not batch:
                        continue
                try:
                    if self._clock.monotonic() - last_used > _IDLE_CHECK:
                        connection = self._revive(connection)
                    reply = self._write(connection, number, batch)
                except self._redis.response_error as exc:  # Redis refused it: sending again would not help
                    self._refused(batch, exc)
                    batch = []
                    continue
                except Exception as exc:  # noqa: BLE001 - the batch stays; reconnect and send it again
                    self._drop_connection(connection)
                    connection = None
                    failures += 1
                    self._set_disconnected(exc)
                    self._pause(_backoff(failures, self._min_backoff, self._max_backoff))
                    continue
                failures = 0
                last_used = self._clock.monotonic()
                with self._lock:
                    self._epoch, self._position = _text(reply[0]), int(reply[1])
                    self._written += len(batch)
                    self._inflight = 0
                    self._changed.notify_all()
                batch = []
        finally:
            self._drop_connection(connection)

    def _refused(self, batch: list[tuple[str, str, str]], exc: Exception) -> None:
        error = mask_text(f"{type(exc).__name__}: {exc}", self._url)
        with self._lock:
            self._failed += len(batch)
            self._inflight = 0
            self._last_error = error
            self._last_error_at = self._clock.time()
            self._changed.notify_all()
        logger.error(
            "Redis refused %d entries of the topic log at %s (prefix %r): %s; they are lost (counted as "
            "failed)",
            len(batch),
            self.url,
            self.prefix,
            error,
        )

    def _write(self, connection: Any, number: int, batch: list[tuple[str, str, str]]) -> Any:
        keys = (self._stream, self._offsets, self._epoch_key, self._position_key, self._done_key)
        args: list[str | int] = [new_epoch(), self.retention, number, self._done_key.rpartition(":")[2]]
        for entry in batch:
            args.extend(entry)
        try:
            connection.send_command("EVALSHA", _APPEND.sha, len(keys), *keys, *args)
            return connection.read_response()
        except self._noscript:  # SCRIPT FLUSH since this connection loaded it
            connection.send_command("EVAL", _APPEND.source, len(keys), *keys, *args)  # loads it, too
            return connection.read_response()

    def _connect(self) -> Any:
        if self._cluster:
            connection: Any = _Routed(self._redis.client())
        else:
            connection = self._connections.sender()
        try:
            connection.send_command("SCRIPT", "LOAD", _APPEND.source)
            connection.read_response()
        except BaseException:
            self._drop_connection(connection)
            raise
        return connection

    def _revive(self, connection: Any) -> Any:
        """After a quiet spell, PING first: a batch sent into a socket the server closed would fail."""
        try:
            connection.send_command("PING")
            connection.read_response()
        except Exception:  # noqa: BLE001 - replaced below; a second failure is the caller's
            self._drop_connection(connection)
            return self._connect()
        return connection

    @staticmethod
    def _drop_connection(connection: Any) -> None:
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.disconnect()

    def _next_batch(self) -> tuple[list[tuple[str, str, str]], int]:
        """The next batch to write, and its number (the script skips a number it has written)."""
        with self._lock:
            outbox = self._outbox
            while not outbox:
                if self._stopping:
                    return [], 0
                self._sender_idle = True
                self._changed.notify_all()
                self._has_work.wait()
            self._sender_idle = False
            batch = [outbox.popleft() for _ in range(min(len(outbox), self._batch_size))]
            self._inflight = len(batch)
            self._batches += 1
            return batch, self._batches

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` on the injected clock, in slices, so close() is noticed."""
        deadline = self._clock.monotonic() + seconds
        while not self._stopping:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return
            self._clock.sleep(min(remaining, _POLL))

    # -- following -----------------------------------------------------------------------------------

    async def follow(self, after: Position | None = None) -> AsyncIterator[list[Entry]]:
        reader = self._reader
        loop = asyncio.get_running_loop()
        with self._lock:
            self._followers[loop] = self._followers.get(loop, 0) + 1
        try:
            known, cursor = await self._follow_start(after)
            batches = _Batches()
            while not self._stopping:
                reply = await reader.acall(self._read_round, cursor)
                if _cancelled():  # redis-py can lose a cancellation that lands in a blocking read
                    raise asyncio.CancelledError
                if reply is UNAVAILABLE:
                    await self._clock.asleep(max(reader.outage.retry_in(), self._min_backoff))
                    continue
                epoch = None if reply[0] is None else _text(reply[0])
                if epoch != known:
                    if known is not None:  # Redis lost its data: the new epoch's entries from the first
                        self._new_epoch_seen(known, epoch)
                        known, cursor = epoch, "0-0"
                        batches.new_epoch()
                        continue
                    known = epoch
                raw = _raw_entries(reply[1])
                if not raw:
                    continue
                cursor = _text(raw[-1][0])
                entries = batches.keep(raw)
                if known is None:
                    known = _text(raw[-1][1]["epoch"])
                if entries:
                    yield entries
        finally:
            with self._lock:
                left = self._followers.pop(loop) - 1
                if left:
                    self._followers[loop] = left
            if not left:  # the loop's last follower closes its connections (no socket left for GC)
                with contextlib.suppress(Exception):
                    await self._reader.aclose()
                    await self._redis.aclose()

    def _new_epoch_seen(self, old: str, new: str | None) -> None:
        logger.warning(
            "the Redis topic log at %s (prefix %r) started a new epoch (%s after %s): Redis lost its data; "
            "following the new epoch from its first entry",
            self.url,
            self.prefix,
            new,
            old,
        )

    async def _follow_start(self, after: Position | None) -> tuple[str | None, str]:
        """The epoch, and the stream id to read after: ``after``'s if it is of the current epoch and not
        beyond the newest entry, else the newest entry's. An outage is waited out."""
        while True:
            reply = await self._reader.acall(self._newest)
            if reply is not UNAVAILABLE:
                break
            await self._clock.asleep(max(self._reader.outage.retry_in(), self._min_backoff))
        epoch = None if reply[0] is None else _text(reply[0])
        newest = int(_text(reply[1][0][0]).partition("-")[0]) if reply[1] else 0
        if after is not None and after.epoch == epoch and 0 <= after.position < newest:
            return epoch, f"{after.position}-0"
        return epoch, f"{newest}-0"

    def _newest(self, client: Any) -> Any:
        pipe = client.pipeline(transaction=True)
        pipe.execute_command("GET", self._epoch_key)
        pipe.execute_command("XREVRANGE", self._stream, "+", "-", "COUNT", 1)
        return pipe.execute()

    def _read_round(self, client: Any, cursor: str) -> Any:
        # The epoch first, then the blocking read, in one round trip: a changed epoch is seen before its
        # entries are taken for the continuation of the old one.
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("GET", self._epoch_key)
        pipe.execute_command(
            "XREAD", "COUNT", _FOLLOW_COUNT, "BLOCK", _BLOCK_MS, "STREAMS", self._stream, cursor
        )
        return pipe.execute()

    # -- replaying -----------------------------------------------------------------------------------

    async def read_after(self, position: Position, limit: int) -> Replay:
        # Shielded: a client that leaves mid-resume cancels its handler, and redis-py cancelled while
        # it connects can hand the half-made connection to the next caller. The read finishes instead.
        keys = (self._epoch_key, self._position_key, self._stream)
        args = (new_epoch(), position.position + 1, max(1, limit))
        reply = await asyncio.shield(self._redis.arun(_REPLAY, keys, args))
        if reply is UNAVAILABLE:
            raise BackendUnavailable(
                f"the Redis topic log at {self.url} is unreachable ({self._redis.last_error}); "
                "cannot replay now, retry after it is back",
                backend="redis",
                context={"prefix": self.prefix},
            )
        epoch_value, last_value, oldest, after = reply
        epoch = _text(epoch_value)
        last = int(last_value or 0)
        if position.epoch != epoch or position.position > last:
            return Replay(epoch, (), last, reset="epoch")
        first = _script_entries(oldest)
        if position.position + 1 < (first[0].position if first else last + 1):
            return Replay(epoch, (), last, reset="retention")
        return Replay(epoch, tuple(_script_entries(after)[:limit]), last)

    # -- lifecycle and reporting ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the sender; entries not yet written are counted as dropped. Followers end."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._dropped += len(self._outbox) + self._inflight
            self._outbox.clear()
            self._has_work.notify_all()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._socket_timeout + _POLL + 1.0)
        self._connections.disconnect()
        self._redis.close()
        self._reader.close()

    async def release_loop(self) -> None:
        """Close the running loop's connections (a server on that loop is stopping); the log stays open."""
        await self._redis.aclose_loop()
        await self._reader.aclose_loop()

    async def aclose(self) -> None:
        """:meth:`close`, and the running loop's connections closed too (call it on the followers' loop)."""
        self.close()
        await self._redis.aclose()
        await self._reader.aclose()

    def status(self) -> dict[str, Any]:
        """What the log knows without asking Redis: the last written position, the outbox, the last error."""
        with self._lock:
            return {
                "log": "redis",
                "url": self.url,
                "prefix": self.prefix,
                "connected": self._connected(),
                "sender": self._state,
                "epoch": self._epoch,
                "position": self._position,
                "retention": self.retention,
                "written": self._written,
                "dropped": self._dropped,
                "failed": self._failed,
                "outbox": len(self._outbox) + self._inflight,
                "outbox_size": self._outbox_size,
                "last_error": self._last_error or self._redis.last_error or self._reader.last_error or None,
                "last_error_at": self._last_error_at,
            }

    def _connected(self) -> bool:
        return self._state == _CONNECTED and self._redis.available and self._reader.available

    def info(self) -> TransportInfo:
        """Available unless the sender, a follower or a replay has found Redis unreachable.

        A connection marked down is probed here when its backoff allows (one PING), so a replay that
        failed once does not leave the log reported down after Redis is back.
        """
        for connection in (self._redis, self._reader):
            if not connection.available:
                connection.call(execute, "PING")
        with self._lock:
            up = self._state != _DISCONNECTED and self._redis.available and self._reader.available
            error = self._last_error or self._redis.last_error or self._reader.last_error
        if up:
            return TransportInfo("redis", available=True, detail=f"{self.url} prefix {self.prefix!r}")
        return TransportInfo(
            "redis", available=False, detail=f"{self.url} unreachable ({error}); entries wait in memory"
        )

    def check(self) -> CheckResult:
        """Pass while Redis keeps the log; warn (never fail) while entries wait in memory for it."""
        info = self.info()
        if info.available:
            return CheckResult("pass", f"redis topic log at {info.detail}")
        with self._lock:
            waiting, dropped = len(self._outbox) + self._inflight, self._dropped
        return CheckResult(
            "warn",
            f"redis topic log at {info.detail}; reconnecting by itself ({waiting} entries waiting, "
            f"{dropped} dropped so far); clients cannot resume until it is back",
        )

    def _set_connected(self) -> None:
        with self._lock:
            previous = self._state
            self._state = _CONNECTED
            self._changed.notify_all()
        if previous == _DISCONNECTED:
            logger.info("Redis topic log reconnected to %s", self.url)

    def _set_disconnected(self, exc: BaseException) -> None:
        error = mask_text(f"{type(exc).__name__}: {exc}", self._url)
        with self._lock:
            previous = self._state
            self._state = _DISCONNECTED
            self._last_error = error
            self._last_error_at = self._clock.time()
            self._changed.notify_all()
        if previous != _DISCONNECTED and not self._stopping:
            logger.warning(
                "Redis topic log cannot reach %s (%s); entries wait in memory (up to %d) until it is back "
                "(retrying with backoff up to %ss)",
                self.url,
                error,
                self._outbox_size,
                self._max_backoff,
            )
