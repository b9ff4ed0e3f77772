"""Copies the bus's events into the topic log, so clients can be sent them and can resume after them."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from buttress.errors import ValidationError
from buttress.events import Event, EventBus, Subscription, compile_pattern
from buttress.realtime._log import TopicLog

__all__ = ["Recorder"]

logger = logging.getLogger("buttress.realtime")

_QUEUE = 10_000  # events waiting for the log on the recorder's own bus subscription


class Recorder:
    """One bus subscription (``**``) that appends what ``record`` selects to ``log``.

    With ``own_only`` (a log shared by every process, such as Redis) only this bus's own events are
    appended: the others reach the log through their own process's recorder, so each is kept once.
    """

    def __init__(self, bus: EventBus, log: TopicLog, record: Iterable[str], *, own_only: bool) -> None:
        self._bus = bus
        self._log = log
        self._patterns = tuple(compile_pattern(pattern) for pattern in record)
        self._everything = any(pattern.text == "**" for pattern in self._patterns)
        self._own = bus.id if own_only else None
        self._refused: set[str] = set()
        self._subscription: Subscription = bus.subscribe("**", self._record, queue_size=_QUEUE)

    def _record(self, event: Event) -> None:
        if self._own is not None and event.origin != self._own:
            return
        topic = event.topic
        if self._everything or any(pattern.matches(topic) for pattern in self._patterns):
            try:
                self._log.append(topic, event.payload, event.time)
            except (
                ValidationError
            ) as exc:  # a payload a shared log cannot carry (not JSON): said once per topic
                if topic not in self._refused:
                    self._refused.add(topic)
                    logger.warning("realtime: events of %r are not recorded: %s", topic, exc)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the events published so far reached the log (appends may still be queued there)."""
        return self._bus.flush(timeout)

    def close(self) -> None:
        self._subscription.unsubscribe()
