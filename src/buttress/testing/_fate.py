"""The fate of one request: reset, hang, or an answer with a status, a delay and maybe a Retry-After.

A fate depends only on (seed, domain, path, n) and the fault, through a RNG seeded by exactly those, so
sequential runs repeat whatever the timing and concurrent runs give the same multiset of fates. The one
exception is the rate limit, which is about time by nature (a GCRA with burst 1 on the monotonic clock).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Final, Literal

from buttress.testing._fault import Fault, Latency, parse_rate

__all__ = ["NORMAL", "Fate", "FaultSlot", "retry_after_value"]

Action = Literal["answer", "reset", "hang"]


@dataclass(frozen=True, slots=True)
class Fate:
    """What to do with a request; ``status`` None means the route decides (a normal answer)."""

    action: Action = "answer"
    status: int | None = None
    delay: float = 0.0
    retry_after: str | None = None


NORMAL: Final = Fate()
_RESET: Final = Fate("reset")
_HANG: Final = Fate("hang")


class FaultSlot:
    """A fault in force for a domain or a path prefix, with the rate-limit state that belongs to it.

    Replacing a fault replaces its slot, so a new rate limit starts with a full bucket.
    """

    __slots__ = ("_errors", "_interval", "_tat", "fault", "plain")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self._interval = parse_rate(fault.rate_limit).interval if fault.rate_limit is not None else 0.0
        self._tat = 0.0
        edge = fault.reset + fault.hang
        self._errors: list[tuple[float, int]] = []
        for status, chance in fault.errors.items():
            if chance > 0:
                edge += chance
                self._errors.append((edge, status))
        self.plain = not (fault.reset or fault.hang or self._errors or self._interval or fault.latency)
        """Nothing to decide: every request gets the normal answer at once (the fast path)."""

    def decide(self, seed: int, domain: str, path: str, n: int) -> Fate:
        """The fate of the ``n``-th request (from 0) to ``path``."""
        if self.plain:
            return NORMAL
        fault = self.fault
        rng = random.Random(f"{seed}:{domain}:{path}:{n}")
        draw = rng.random()
        if draw < fault.reset:
            return _RESET
        if draw < fault.reset + fault.hang:
            return _HANG
        latency = fault.latency
        delay = latency.sample(rng) if isinstance(latency, Latency) else latency
        if self._interval:
            wait = self._admit(time.monotonic())
            if wait > 0:
                explicit = retry_after_value(fault, 429)
                return Fate(status=429, delay=delay, retry_after=explicit or str(max(1, math.ceil(wait))))
        for edge, status in self._errors:
            if draw < edge:
                return Fate(status=status, delay=delay, retry_after=retry_after_value(fault, status))
        return Fate(delay=delay) if delay else NORMAL

    def _admit(self, now: float) -> float:
        """GCRA with burst 1: 0 when a request may pass now (and takes its slot), else seconds to wait."""
        if now < self._tat:
            return self._tat - now
        self._tat = now + self._interval
        return 0.0


def retry_after_value(fault: Fault, status: int) -> str | None:
    """The Retry-After header the fault asks for on a 429 or 503, else None."""
    value = fault.retry_after
    if value is None or status not in (429, 503):
        return None
    if value == "date":
        return formatdate(math.ceil(time.time() + fault.retry_after_seconds), usegmt=True)
    seconds = float(value)
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)
