"""How long to wait before each retry: constant, linear or exponential growth, capped, with jitter.

Jitter spreads the retries of many clients that failed together, so they do not come back in lockstep
(see AWS, "Exponential Backoff and Jitter"). The delay of retry ``n`` (``n`` starts at 1) is first a
base, then jittered:

- ``constant``: base = ``initial``;
- ``linear``: base = ``initial * n`` (``multiplier`` is not used);
- ``exponential``: base = ``initial * multiplier ** (n - 1)``;

every base capped at ``max_delay``. Then ``none`` keeps the base, ``full`` draws from ``[0, base]``,
``equal`` from ``[base / 2, base]``, and ``decorrelated`` (AWS) draws from ``[initial, previous * 3]``
capped at ``max_delay``, where ``previous`` is the delay drawn for the retry before (``initial`` for the
first), so it ignores ``kind`` and ``multiplier``: it grows by itself.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final, Literal, get_args

from buttress.errors import ValidationError

__all__ = ["Backoff", "BackoffKind", "Jitter"]

Jitter = Literal["none", "full", "equal", "decorrelated"]
BackoffKind = Literal["constant", "linear", "exponential"]

_JITTERS: Final = get_args(Jitter)
_KINDS: Final = get_args(BackoffKind)


def _seconds(value: object, field: str, example: str, *, positive: bool = False) -> float:
    bad = isinstance(value, bool) or not isinstance(value, int | float)
    if bad or not math.isfinite(value) or value < 0 or (positive and value == 0):  # type: ignore[arg-type,operator]
        bound = "> 0" if positive else ">= 0"
        raise ValidationError(
            f"{field} must be a finite number of seconds {bound}, got {value!r}; e.g. {example}",
            field=field,
        )
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Backoff:
    """A delay schedule for retries; immutable, so one instance can serve every Retry."""

    kind: BackoffKind = "exponential"
    initial: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 10.0
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValidationError(
                f"kind must be one of {', '.join(_KINDS)}, got {self.kind!r}; "
                "e.g. Backoff(kind='exponential')",
                field="kind",
            )
        if self.jitter not in _JITTERS:
            raise ValidationError(
                f"jitter must be one of {', '.join(_JITTERS)}, got {self.jitter!r}; e.g. jitter='full'",
                field="jitter",
            )
        initial = _seconds(self.initial, "initial", "0.5")
        max_delay = _seconds(self.max_delay, "max_delay", "10.0")
        multiplier = self.multiplier
        if (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, int | float)
            or not 1 <= multiplier <= 100
        ):
            raise ValidationError(
                f"multiplier must be a number between 1 and 100 (the growth factor of exponential "
                f"backoff), got {multiplier!r}; e.g. 2.0",
                field="multiplier",
            )
        if max_delay < initial:
            raise ValidationError(
                f"max_delay must be >= initial (it caps every delay), got max_delay={max_delay!r} "
                f"with initial={initial!r}; e.g. max_delay={max(initial * 20, 10.0)!r}",
                field="max_delay",
            )
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "max_delay", max_delay)
        object.__setattr__(self, "multiplier", float(multiplier))

    @classmethod
    def constant(cls, delay: float, *, jitter: Jitter = "none") -> Backoff:
        """The same ``delay`` before every retry (capped at ``max(delay, 10)`` for a Retry-After)."""
        delay = _seconds(delay, "delay", "1.0")
        return cls("constant", delay, 1.0, max(delay, 10.0), jitter)

    @classmethod
    def linear(cls, initial: float, *, max_delay: float = 10.0, jitter: Jitter = "full") -> Backoff:
        """``initial``, ``2 * initial``, ``3 * initial``, ... up to ``max_delay``."""
        return cls("linear", initial, 1.0, max_delay, jitter)

    @classmethod
    def exponential(
        cls,
        initial: float = 0.5,
        *,
        multiplier: float = 2.0,
        max_delay: float = 10.0,
        jitter: Jitter = "full",
    ) -> Backoff:
        """``initial``, ``initial * multiplier``, ``initial * multiplier ** 2``, ... up to ``max_delay``."""
        return cls("exponential", initial, multiplier, max_delay, jitter)

    def base(self, retry_number: int) -> float:
        """The delay before retry ``retry_number`` (from 1) before jitter, capped at ``max_delay``."""
        if self.kind == "constant":
            value = self.initial
        elif self.kind == "linear":
            value = self.initial * retry_number
        else:
            try:
                value = self.initial * self.multiplier ** (retry_number - 1)
            except OverflowError:
                value = self.max_delay
        return min(value, self.max_delay)

    def delay(self, retry_number: int, previous: float, rng: random.Random) -> float:
        """The jittered delay before retry ``retry_number`` (from 1); ``previous`` is the last one drawn."""
        jitter = self.jitter
        if jitter == "decorrelated":
            low = self.initial
            high = max(previous, low) * 3
            return min(self.max_delay, rng.uniform(low, high))
        base = self.base(retry_number)
        if jitter == "none":
            return base
        if jitter == "full":
            return rng.uniform(0.0, base)
        half = base / 2
        return min(base, half + rng.uniform(0.0, half))
