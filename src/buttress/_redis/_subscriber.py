"""A background listener on one pattern: what other processes publish, and when some of it may be lost.

A :class:`Subscriber` owns one daemon thread and one dedicated connection
(:meth:`PubSubConnections.listener`). It PSUBSCRIBEs its pattern, hands each message to
``on_message(channel, data)``, and calls ``on_gap()`` whenever messages may have been lost: when the
connection drops, and again once the subscription is back (anything published in between is gone, so
the owner re-reads what it caches). It reconnects by itself with capped exponential backoff. The waits
are real time (``threading.Event``), not the owner's clock: they pace a socket, they decide nothing.

The thread starts on :meth:`start` and again after a ``fork`` (a child inherits no threads): owners
call :meth:`start` on their slow path, which costs one ``os.getpid()`` when it is already running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from buttress._redis._pubsub import PubSubConnections

__all__ = ["Subscriber", "glob_escape"]

_log = logging.getLogger("buttress.redis")
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a PSUBSCRIBE pattern."""
    return text.translate(_GLOB_SPECIALS)


class Subscriber:
    """Listens on ``pattern`` in a daemon thread; ``on_message`` and ``on_gap`` run in that thread.

    ``poll_interval`` bounds how long :meth:`close` waits for the thread; ``min_backoff``/``max_backoff``
    pace reconnection (seconds, doubling). Exceptions from the callbacks are logged, never fatal.
    """

    def __init__(
        self,
        connections: PubSubConnections,
        pattern: str,
        on_message: Callable[[bytes, bytes], object],
        on_gap: Callable[[], object],
        *,
        name: str = "buttress-redis-subscriber",
        poll_interval: float = 0.5,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
    ) -> None:
        self.connections = connections
        self.pattern = pattern
        self._on_message = on_message
        self._on_gap = on_gap
        self._name = name
        self._poll = poll_interval
        self._min_backoff = min_backoff
        self._max_backoff = max(min_backoff, max_backoff)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pid = 0
        self._connection: Any = None
        self.subscribed = threading.Event()
        """Set while the subscription is confirmed (tests and health wait on it)."""

    def __repr__(self) -> str:
        state = "subscribed" if self.subscribed.is_set() else "not subscribed"
        return f"Subscriber({self.connections.label!r}, {self.pattern!r}, {state})"

    def start(self) -> None:
        """Start the thread unless it runs in this process already (cheap to call on a slow path)."""
        if self._pid == os.getpid() or self._stop.is_set():
            return
        with self._lock:
            if self._pid == os.getpid() or self._stop.is_set():
                return
            self._pid = os.getpid()
            self.subscribed.clear()
            threading.Thread(target=self._run, name=self._name, daemon=True).start()

    def close(self) -> None:
        """Stop listening: the thread exits at once (its socket is shut) or within ``poll_interval``."""
        self._stop.set()
        self._drop(self._connection)

    # -- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._connection = self.connections.listener()
                self._connection.send_command("PSUBSCRIBE", self.pattern)
                self._listen(self._connection)
            except Exception as exc:  # noqa: BLE001 - any failure means "not subscribed now"
                if not self._stop.is_set():
                    failures += 1
                    if failures == 1:
                        _log.warning(
                            "Redis subscriber %s lost %s (%s: %s); reconnecting, and re-reading meanwhile",
                            self.connections.label,
                            self.pattern,
                            type(exc).__name__,
                            exc,
                        )
            else:
                failures = 0
            finally:
                self.subscribed.clear()
                self._drop(self._connection)
                self._connection = None
            if self._stop.is_set():
                return
            self._gap()
            self._stop.wait(min(self._min_backoff * 2 ** max(failures - 1, 0), self._max_backoff))

    def _listen(self, connection: Any) -> None:
        while not self._stop.is_set():
            if not connection.can_read(timeout=self._poll):
                continue
            reply = connection.read_response()
            kind = reply[0] if isinstance(reply, list) and reply else None
            if kind == b"pmessage":
                try:
                    self._on_message(reply[2], reply[3])
                except Exception:  # noqa: BLE001 - one bad message must not stop the listener
                    _log.exception("handling a message on %r failed", reply[2])
            elif kind == b"psubscribe":
                self._gap()  # anything published before the subscription took is lost
                self.subscribed.set()

    def _gap(self) -> None:
        try:
            self._on_gap()
        except Exception:  # noqa: BLE001 - logged; the listener carries on
            _log.exception("the owner of Redis subscriber %s failed to handle a gap", self.pattern)

    @staticmethod
    def _drop(connection: Any) -> None:
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.disconnect()
