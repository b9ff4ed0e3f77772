"""Cross-process fan-out over Redis pub/sub, with two background threads and no waiting in ``publish``.

The **sender** thread drains a bounded outbox, pipelining a batch of PUBLISH commands per round trip.
The **listener** thread PSUBSCRIBEs ``<prefix>:*`` and hands every event to the bus, which ignores its
own (same ``origin``; recognised from the raw message, without decoding it) and delivers the rest locally.
Channels are ``<prefix>:<topic>``; bodies are JSON objects with ``id``, ``topic``, ``payload``, ``time``
and ``origin``, so programs in other languages can take part.

Failure policy: when Redis is unreachable the bus keeps delivering locally. The outbox keeps the newest
``outbox_size`` events (older ones are dropped and counted as ``dropped``); a batch lost in a failed round
trip is counted as ``failed``. Both threads reconnect with capped exponential backoff on the injected
clock, :meth:`RedisTransport.status` reports ``connected: False`` with ``last_error``, and delivery resumes
by itself when Redis returns. Passwords in the URL are masked everywhere they are shown. The connections
come from the Redis layer (:class:`buttress._redis.PubSubConnections`); this module creates no pool.

On a Redis Cluster (``redis+cluster://``) the transport uses plain PUBLISH and PSUBSCRIBE, not sharded
pub/sub: the listener needs a pattern (``<prefix>:*``) and there is no sharded PSUBSCRIBE, and a plain
message reaches every node, so both threads talk to the first seed node that answers and move to the
next one when it dies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from buttress._redis import DEFAULT_TIMEOUT, PubSubConnections, check_prefix, check_url, mask_text, mask_url
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.events._event import Event, TransportInfo
from buttress.events._wire import ENCODER, backoff_delay, pack_publishes, parse_event
from buttress.health_types import CheckResult

__all__ = ["RedisTransport"]

logger = logging.getLogger("buttress.events")

_CONNECTING, _CONNECTED, _DISCONNECTED = "connecting", "connected", "disconnected"
_IDLE_CHECK = 10.0  # seconds without traffic after which the sender PINGs before writing a batch
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisTransport:
    """Fan events out to every bus on the same Redis (and ``prefix``), in any process.

    Channels are ``<prefix>:<topic>``. ``outbox_size`` bounds the events waiting to be sent;
    ``batch_size`` the PUBLISH commands pipelined per round trip. ``min_backoff``/``max_backoff`` shape
    reconnection (seconds, doubling, capped), waited on ``clock``. ``socket_timeout`` bounds connecting
    and each reply (the Redis layer's one default). ``poll_interval`` is how often idle threads look for
    :meth:`close` (it bounds how long close takes, not delivery latency). One transport serves one bus.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "buttress:events",
        outbox_size: int = 10_000,
        batch_size: int = 500,
        clock: Clock = SYSTEM_CLOCK,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
        socket_timeout: float = DEFAULT_TIMEOUT,
        poll_interval: float = 0.1,
    ) -> None:
        check_prefix(prefix)
        if isinstance(outbox_size, bool) or not isinstance(outbox_size, int) or outbox_size < 1:
            raise ValidationError(
                f"outbox_size must be a whole number >= 1 (events waiting for Redis), got {outbox_size!r}",
                field="outbox_size",
            )
        check_url(url, "redis_url")
        self._connections = PubSubConnections(url, timeout=socket_timeout, url_field="redis_url")
        self._url = url
        self.url = mask_url(url)
        self.prefix = prefix
        self._channel_base = prefix + ":"
        self._outbox_size = outbox_size
        self._batch_size = max(1, batch_size)
        self._clock = clock
        self._min_backoff = min_backoff
        self._max_backoff = max(min_backoff, max_backoff)
        self._poll_interval = poll_interval
        self._socket_timeout = socket_timeout
        self._outbox: deque[tuple[str, str]] = deque()
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._changed = threading.Condition(self._lock)
        self._sender_idle = True
        self._inflight = 0
        self._stopping = False
        self._deliver: Callable[[Event], None] | None = None
        self._threads: list[threading.Thread] = []
        self._state = {"sender": _CONNECTING, "listener": _CONNECTING}
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._sent = 0
        self._failed = 0
        self._dropped = 0
        self._received = 0
        self._echoes = 0
        self._malformed = 0
        self._origin: str | None = None
        self._echo_suffix: bytes | None = None
        self._subscribed_hooks: tuple[Callable[[], object], ...] = ()

    # -- EventTransport ------------------------------------------------------------------------------

    def start(self, deliver: Callable[[Event], None]) -> None:
        with self._lock:
            if self._deliver is not None or self._stopping:
                raise RuntimeError("a RedisTransport serves exactly one EventBus; create one per bus")
            self._deliver = deliver
            for name, target in (("sender", self._run_sender), ("listener", self._run_listener)):
                thread = threading.Thread(target=target, name=f"buttress-events-redis-{name}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def send(self, event: Event) -> None:
        """Serialise now (a bad payload raises here, in the publisher) and queue for the sender thread."""
        try:
            body = ENCODER.encode(
                {
                    "id": event.id,
                    "topic": event.topic,
                    "payload": event.payload,
                    "time": event.time,
                    "origin": event.origin,
                }
            )
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"payload for topic {event.topic!r} cannot be sent to other processes ({exc}); the Redis "
                "transport carries events as JSON: use dicts with string keys, lists, str, int, finite "
                "float, bool and None (convert datetimes, sets and objects before publishing)",
                field="payload",
                context={"topic": event.topic},
            ) from None
        if event.origin != self._origin:  # the bus's id: recognise our own echoes without parsing them
            self._origin = event.origin
            self._echo_suffix = f',"origin":{json.dumps(event.origin)}}}'.encode()
        lock = self._lock
        lock.acquire()  # not "with": this runs in every publish
        try:
            if self._stopping:
                self._dropped += 1
                return
            outbox = self._outbox
            if len(outbox) >= self._outbox_size:
                outbox.popleft()
                self._dropped += 1
            outbox.append((self._channel_base + event.topic, body))
            if self._sender_idle:
                self._sender_idle = False
                self._has_work.notify()
        finally:
            lock.release()

    def close(self) -> None:
        """Stop both threads; events still in the outbox are counted as dropped (the bus flushes first)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._dropped += len(self._outbox)  # never sent: counted, not silently lost
            self._outbox.clear()
            self._has_work.notify_all()
            self._changed.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(self._socket_timeout + self._poll_interval + 1.0)
        self._connections.disconnect()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "transport": "redis",
                "url": self.url,
                "prefix": self.prefix,
                "connected": self._state["sender"] == _CONNECTED and self._state["listener"] == _CONNECTED,
                "sender": self._state["sender"],
                "listener": self._state["listener"],
                "last_error": self._last_error,
                "last_error_at": self._last_error_at,
                "sent": self._sent,
                "failed": self._failed,
                "dropped": self._dropped,
                "received": self._received,
                "echoes": self._echoes,
                "malformed": self._malformed,
                "outbox": len(self._outbox),
                "outbox_size": self._outbox_size,
            }

    # -- waiting helpers -----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the outbox is sent, or the sender is disconnected (then nothing can be sent now).

        Returns False if ``timeout`` ran out first.
        """
        with self._lock:
            return self._changed.wait_for(self._flushed, timeout)

    def _flushed(self) -> bool:
        state = self._state["sender"]
        if self._stopping or state == _DISCONNECTED:
            return True
        return state == _CONNECTED and not self._outbox and self._inflight == 0

    def on_subscribed(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` on the listener thread each time Redis confirms its (re)subscription.

        Pub/sub keeps nothing: events published while the listener was reconnecting are lost, so a
        subscriber holding state derived from them (a tiered cache's L1) resets it here. It runs before
        :meth:`wait_connected` returns. Returns the function that removes ``callback``.
        """
        with self._lock:
            self._subscribed_hooks = (*self._subscribed_hooks, callback)

        def remove() -> None:
            with self._lock:
                self._subscribed_hooks = tuple(h for h in self._subscribed_hooks if h is not callback)

        return remove

    def _subscribed(self) -> None:
        for hook in self._subscribed_hooks:
            try:
                hook()
            except Exception:  # one failing hook must not stop the listener
                logger.exception("an on_subscribed hook of the Redis event transport failed")
        self._set_connected("listener")

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until both threads are connected (the listener's PSUBSCRIBE confirmed by Redis)."""
        with self._lock:
            return (
                self._changed.wait_for(
                    lambda: self._stopping or all(s == _CONNECTED for s in self._state.values()), timeout
                )
                and not self._stopping
            )

    def wait_disconnected(self, timeout: float | None = None) -> bool:
        """Block until a thread has found Redis unreachable (for tests and health probes)."""
        with self._lock:
            return self._changed.wait_for(lambda: _DISCONNECTED in self._state.values(), timeout)

    # -- sender thread -------------------------------------------------------------------------------

    def _run_sender(self) -> None:
        # One dedicated connection. PUBLISH commands are packed here and written in one go, then their
        # replies read: one round trip per batch, about 3x cheaper than redis-py's generic pipeline.
        connection: Any = None
        failures = 0
        last_used = 0.0
        try:
            while not self._stopping:
                if connection is None:
                    try:
                        connection = self._connect()
                    except Exception as exc:  # noqa: BLE001 - any failure means "not connected now"
                        failures += 1
                        self._set_disconnected("sender", exc)
                        self._pause(backoff_delay(failures, self._min_backoff, self._max_backoff))
                        continue
                    failures = 0
                    last_used = self._clock.monotonic()
                    self._set_connected("sender")
                batch = self._next_batch()
                if not batch:
                    continue
                try:
                    if self._clock.monotonic() - last_used > _IDLE_CHECK:
                        connection = self._revive(connection)
                    connection.send_packed_command([pack_publishes(batch)], check_health=False)
                    for _ in batch:
                        connection.read_response()
                except Exception as exc:  # noqa: BLE001 - the batch is lost; count it and reconnect
                    connection = self._drop_connection(connection)
                    with self._lock:
                        self._failed += len(batch)
                        self._inflight = 0
                    failures = 1
                    self._set_disconnected("sender", exc)
                    self._pause(backoff_delay(failures, self._min_backoff, self._max_backoff))
                    continue
                last_used = self._clock.monotonic()
                with self._lock:
                    self._sent += len(batch)
                    self._inflight = 0
                    self._changed.notify_all()
        finally:
            self._drop_connection(connection)

    def _connect(self) -> Any:
        connection: Any = self._connections.sender()
        try:
            connection.send_command("PING")
            connection.read_response()
        except BaseException:
            self._drop_connection(connection)
            raise
        return connection

    def _revive(self, connection: Any) -> Any:
        """After a quiet spell, check the connection first: a server or a firewall may have closed it, and
        a batch written into a dead socket would be lost. A dead one is replaced once, without backoff."""
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

    def _next_batch(self) -> list[tuple[str, str]]:
        with self._lock:
            outbox = self._outbox
            while not outbox:
                if self._stopping:
                    return []
                self._sender_idle = True
                self._changed.notify_all()
                self._has_work.wait()
            self._sender_idle = False
            batch = [outbox.popleft() for _ in range(min(len(outbox), self._batch_size))]
            self._inflight = len(batch)
            return batch

    # -- listener thread -----------------------------------------------------------------------------

    def _run_listener(self) -> None:
        # A raw subscribed connection rather than redis-py's PubSub, whose per-message bookkeeping costs
        # as much again as parsing the message. Every event on the prefix passes through here.
        failures = 0
        pattern = self._channel_base.translate(_GLOB_SPECIALS) + "*"
        while not self._stopping:
            connection: Any = None
            try:
                connection = self._connections.listener()
                connection.send_command("PSUBSCRIBE", pattern)
                quiet_since = self._clock.monotonic()
                while not self._stopping:
                    if not connection.can_read(timeout=self._poll_interval):
                        if self._clock.monotonic() - quiet_since > _IDLE_CHECK:
                            connection.send_command("PING")  # a dead peer surfaces as an error
                            quiet_since = self._clock.monotonic()
                        continue
                    reply = connection.read_response(push_request=True)
                    kind = reply[0] if isinstance(reply, list) and reply else None
                    if kind == b"pmessage":
                        self._handle(reply[3])
                    elif kind == b"psubscribe":
                        failures = 0
                        self._subscribed()
                    quiet_since = self._clock.monotonic()
            except Exception as exc:  # noqa: BLE001 - any failure means "not connected now"
                failures += 1
                self._set_disconnected("listener", exc)
            finally:
                self._drop_connection(connection)
            if not self._stopping:
                self._pause(backoff_delay(failures, self._min_backoff, self._max_backoff))

    def _handle(self, data: bytes) -> None:
        suffix = self._echo_suffix
        if suffix is not None and data.endswith(suffix):  # our own event coming back: already delivered
            with self._lock:
                self._echoes += 1
            return
        try:
            event = parse_event(data)
        except (ValueError, KeyError, TypeError) as exc:
            with self._lock:
                self._malformed += 1
            logger.warning("ignored a malformed event message on %s: %s", self.prefix, exc)
            return
        with self._lock:
            self._received += 1
        deliver = self._deliver
        if deliver is not None:
            try:
                deliver(event)
            except Exception:  # one bad event must not stop the listener
                logger.exception("delivering remote event %s on topic %r failed", event.id, event.topic)

    # -- state ---------------------------------------------------------------------------------------

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` on the injected clock, in slices, so close() is noticed."""
        deadline = self._clock.monotonic() + seconds
        while not self._stopping:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return
            self._clock.sleep(min(remaining, self._poll_interval))

    def _mask(self, text: str) -> str:
        return mask_text(text, self._url)

    def _set_connected(self, side: str) -> None:
        with self._lock:
            previous = self._state[side]
            self._state[side] = _CONNECTED
            self._changed.notify_all()
        if previous == _DISCONNECTED:
            logger.info("Redis event transport %s reconnected to %s", side, self.url)

    def _set_disconnected(self, side: str, exc: BaseException) -> None:
        error = self._mask(f"{type(exc).__name__}: {exc}")
        with self._lock:
            previous = self._state[side]
            self._state[side] = _DISCONNECTED
            self._last_error = error
            self._last_error_at = self._clock.time()
            self._changed.notify_all()
        if previous != _DISCONNECTED and not self._stopping:
            logger.warning(
                "Redis event transport %s cannot reach %s (%s); events are delivered in this process "
                "only until it reconnects (retrying with backoff up to %ss)",
                side,
                self.url,
                error,
                self._max_backoff,
            )

    def info(self) -> TransportInfo:
        """Available unless a thread has found Redis unreachable (connecting at start counts as up)."""
        with self._lock:
            down = _DISCONNECTED in self._state.values()
            error = self._last_error
        if not down:
            return TransportInfo("redis", available=True, detail=f"{self.url} prefix {self.prefix!r}")
        return TransportInfo(
            "redis",
            available=False,
            detail=f"{self.url} unreachable ({error}); delivering in this process only",
        )

    def check(self) -> CheckResult:
        """Pass while Redis carries events; warn (never fail) while the bus delivers in this process only."""
        info = self.info()
        if info.available:
            return CheckResult("pass", f"redis event transport at {info.detail}")
        with self._lock:
            dropped, failed = self._dropped, self._failed
        return CheckResult(
            "warn",
            f"redis event transport at {info.detail}; reconnecting by itself "
            f"({dropped} events dropped, {failed} lost in failed sends so far)",
        )

    def __repr__(self) -> str:
        return f"RedisTransport({self.url!r}, prefix={self.prefix!r})"
