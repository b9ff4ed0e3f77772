"""When a remote store is down, and when to knock on its door again.

Every Redis owner (the resilience store, the cache backend) follows one outage discipline, applied for
them by the Redis layer (:class:`buttress._redis.RedisConnection`): the first connection error marks the
store down; from then on every call is served locally without touching the network, except
one call per backoff interval (``reconnect_min`` doubling to ``reconnect_max`` after each failed probe),
which probes the store. A successful probe marks it up again. :class:`OutageTracker` is that bookkeeping;
what to serve locally, what to log and which events to publish stay with the owners.

Each call reads :attr:`OutageTracker.epoch` when it starts and hands it back with its outcome. An outcome
from an earlier epoch is stale and changes nothing: fifty calls in flight when Redis dies cost one outage
and one backoff step, not fifty; a call that failed before a recovery but reports after it does not start
a new outage; a call that succeeded before the outage began does not end it.
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

    __slots__ = (
        "_delay",
        "_lock",
        "_now",
        "_retry_at",
        "calls",
        "down_since",
        "epoch",
        "last_error",
        "max",
        "min",
    )

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
        self.epoch = 0
        """Bumped at every transition (down or up); a call's outcome counts only within its own epoch."""
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

    def retry_in(self) -> float:
        """Seconds until a call may probe the store again (0 while it is reachable, or when one is due)."""
        if self.down_since is None:
            return 0.0
        return max(0.0, self._retry_at - self._now())

    def mark_down(self, exc: BaseException, epoch: int) -> bool:
        """Record a failed call that started in ``epoch``; True when it starts an outage.

        Within its epoch, a failure while up starts an outage and a failed probe doubles the delay until
        the next one; a stale failure only counts.
        """
        now = self._now()
        self.calls.add()
        self.last_error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            if epoch != self.epoch:
                return False
            first = self.down_since is None
            if first:
                self.down_since = now
                self._delay = self.min
                self.epoch += 1
            else:
                self._delay = min(self._delay * 2, self.max)
            self._retry_at = now + self._delay
        return first

    def mark_up(self, epoch: int) -> float | None:
        """Record a successful probe that started in ``epoch``; the outage's length if this ends it."""
        with self._lock:
            since = self.down_since
            if since is None or epoch != self.epoch:
                return None
            self.down_since = None
            self._delay = self.min
            self.epoch += 1
        return self._now() - since

    def outage_seconds(self) -> float:
        """How long the current outage has lasted (0 while the store is reachable)."""
        since = self.down_since
        return 0.0 if since is None else self._now() - since
