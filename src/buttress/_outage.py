"""When a remote store is down, and when to knock on its door again.

The Redis resilience store and the Redis cache backend follow one outage discipline: the first connection
error marks the store down; from then on every call is served locally without touching the network, except
one call per backoff interval (``reconnect_min`` doubling to ``reconnect_max`` after each failed probe),
which probes the store. A successful call marks it up again. :class:`OutageTracker` is that bookkeeping,
so both owners share it; what to serve locally, what to log and which events to publish stay with them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from buttress._tally import Tally
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError

__all__ = ["OutageTracker"]


class OutageTracker:
    """Down/up transitions of one remote store, with skip-until-probe and a doubling reconnect backoff.

    ``calls`` counts the calls served locally because the store was down (each skipped call and each call
    that failed). Reading :attr:`down_since` is the whole cost of the check on the normal path.
    """

    __slots__ = ("_delay", "_lock", "_now", "_retry_at", "calls", "down_since", "last_error", "max", "min")

    def __init__(
        self, *, clock: Clock = SYSTEM_CLOCK, reconnect_min: float = 0.5, reconnect_max: float = 30.0
    ) -> None:
        if not isinstance(reconnect_min, int | float) or not reconnect_min > 0:
            raise ValidationError(
                f"reconnect_min must be a number of seconds > 0, got {reconnect_min!r}; e.g. 0.5",
                field="reconnect_min",
            )
        if not isinstance(reconnect_max, int | float) or not reconnect_max >= reconnect_min:
            raise ValidationError(
                f"reconnect_max must be a number of seconds >= reconnect_min ({reconnect_min!r}), got "
                f"{reconnect_max!r}; e.g. 30",
                field="reconnect_max",
            )
        self.min = float(reconnect_min)
        self.max = float(reconnect_max)
        self._now: Callable[[], float] = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._delay = self.min
        self.down_since: float | None = None
        """Monotonic time the current outage began; None while the store is reachable."""
        self.last_error = ""
        """``"<Type>: <message>"`` of the last failure."""
        self.calls = Tally()

    def __repr__(self) -> str:
        state = "up" if self.down_since is None else f"down for {self.outage_seconds():.1f} s"
        return f"OutageTracker({state}, {self.calls.value} local calls)"

    @property
    def available(self) -> bool:
        """False while the store is considered unreachable (between a failure and a successful call)."""
        return self.down_since is None

    def skip(self) -> bool:
        """True (and counted) when the store is down and it is not yet time to probe it.

        False claims the probe: this caller tries the store, the others keep serving locally until the
        next interval, so a dead store costs one network attempt per interval, not one per call.
        """
        if self.down_since is None:
            return False
        now = self._now()
        if now < self._retry_at:
            self.calls.add()
            return True
        self._retry_at = now + self._delay
        return False

    def mark_down(self, exc: BaseException) -> bool:
        """Record a failed call: count it, push the next probe back; True when this starts an outage."""
        now = self._now()
        self.calls.add()
        self.last_error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = now
                self._delay = self.min
            else:
                self._delay = min(self._delay * 2, self.max)
            self._retry_at = now + self._delay
        return first

    def mark_up(self) -> float | None:
        """Record a successful call; the outage's length in seconds if this ends one, else None."""
        with self._lock:
            since, self.down_since = self.down_since, None
            self._delay = self.min
        return None if since is None else self._now() - since

    def outage_seconds(self) -> float:
        """How long the current outage has lasted (0 while the store is reachable)."""
        since = self.down_since
        return 0.0 if since is None else self._now() - since

    @property
    def next_probe_in(self) -> float:
        """Seconds until a call may probe the store again (0 while it is reachable)."""
        return 0.0 if self.down_since is None else max(self._retry_at - self._now(), 0.0)
