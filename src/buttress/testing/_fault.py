"""What an upstream does wrong: :class:`Latency` (how slow) and :class:`Fault` (how it fails).

Both are frozen, picklable dataclasses, so a fault profile can cross into the process-mode server and be
compared in tests. Validation happens at construction and names the field, so a typo in a test fails where
it was written, not as a puzzling server behaviour later.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from buttress.errors import ValidationError
from buttress.rate import Rate

__all__ = ["Fault", "Latency", "RetryAfter"]

LatencyKind = Literal["fixed", "uniform", "lognormal"]
RetryAfter = float | Literal["date"] | None

_Z99: Final = 2.3263478740408408
"""The standard normal's 99th percentile: a lognormal with sigma = ln(p99 / median) / _Z99 has that p99."""
_EPSILON: Final = 1e-9


def _seconds(value: object, name: str, example: str) -> float:
    """A finite, non-negative number of seconds, or a ValidationError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValidationError(
            f"{name} must be a finite number of seconds >= 0, got {value!r}; e.g. {example}", field=name
        )
    return float(value)


def _probability(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValidationError(
            f"{name} must be a probability between 0 and 1, got {value!r}; e.g. {name}=0.1", field=name
        )
    return float(value)


@dataclass(frozen=True, slots=True, repr=False)
class Latency:
    """A delay distribution, sampled from the per-request seeded RNG so runs repeat.

    Build one with :meth:`fixed`, :meth:`uniform` or :meth:`lognormal`; ``a`` and ``b`` are that
    constructor's two arguments (``fixed`` uses ``a`` only).
    """

    kind: LatencyKind
    a: float
    b: float = 0.0

    @classmethod
    def fixed(cls, seconds: float) -> Latency:
        """Always ``seconds``."""
        return cls("fixed", _seconds(seconds, "latency", "Latency.fixed(0.05)"))

    @classmethod
    def uniform(cls, low: float, high: float) -> Latency:
        """Evenly spread between ``low`` and ``high`` seconds."""
        low = _seconds(low, "latency", "Latency.uniform(0.2, 0.6)")
        high = _seconds(high, "latency", "Latency.uniform(0.2, 0.6)")
        if high < low:
            raise ValidationError(
                f"latency: uniform(low, high) needs low <= high, got ({low!r}, {high!r}); "
                "e.g. Latency.uniform(0.2, 0.6)",
                field="latency",
            )
        return cls("uniform", low, high)

    @classmethod
    def lognormal(cls, median: float, p99: float) -> Latency:
        """A long tail like real services: half the requests under ``median``, 99% under ``p99``."""
        median = _seconds(median, "latency", "Latency.lognormal(0.05, 0.5)")
        p99 = _seconds(p99, "latency", "Latency.lognormal(0.05, 0.5)")
        if median <= 0 or p99 < median:
            raise ValidationError(
                f"latency: lognormal(median, p99) needs 0 < median <= p99, got ({median!r}, {p99!r}); "
                "e.g. Latency.lognormal(0.05, 0.5)",
                field="latency",
            )
        return cls("lognormal", median, p99)

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds."""
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        sigma = math.log(self.b / self.a) / _Z99
        return rng.lognormvariate(math.log(self.a), sigma)

    def __repr__(self) -> str:
        args = f"{self.a!r}" if self.kind == "fixed" else f"{self.a!r}, {self.b!r}"
        return f"Latency.{self.kind}({args})"


@dataclass(frozen=True, slots=True)
class Fault:
    """How a domain (or a path prefix inside one) misbehaves; ``Fault()`` is a healthy server.

    Per request the server decides in this order: down, reset, hang, rate limit, errors, latency, normal.
    ``reset``, ``hang`` and ``errors`` share one seeded draw, so their probabilities are exact shares of
    the requests and must sum to at most 1. Latency delays every answer, errors included.
    """

    latency: float | Latency = 0.0
    errors: Mapping[int, float] = field(default_factory=dict)
    retry_after: RetryAfter = None
    retry_after_seconds: float = 1.0
    rate_limit: str | None = None
    reset: float = 0.0
    hang: float = 0.0
    slow_body: float = 0.0
    body_chunks: int = 4
    down: bool = False
    status: int = 200

    def __post_init__(self) -> None:
        if not isinstance(self.latency, Latency):
            _seconds(self.latency, "latency", "latency=0.05 or latency=Latency.uniform(0.2, 0.6)")
        object.__setattr__(self, "errors", _check_errors(self.errors))
        _check_retry_after(self.retry_after)
        _seconds(self.retry_after_seconds, "retry_after_seconds", "retry_after_seconds=2")
        if self.rate_limit is not None:
            parse_rate(self.rate_limit)
        share = _probability(self.reset, "reset") + _probability(self.hang, "hang")
        if share + sum(self.errors.values()) > 1.0 + _EPSILON:
            raise ValidationError(
                f"reset ({self.reset}) + hang ({self.hang}) + errors ({sum(self.errors.values()):g}) is more "
                "than 1; they share one draw per request, so lower them to sum to at most 1",
                field="errors",
            )
        _seconds(self.slow_body, "slow_body", "slow_body=0.1")
        chunks = self.body_chunks
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
            raise ValidationError(
                f"body_chunks must be an integer >= 1, got {self.body_chunks!r}; e.g. body_chunks=4",
                field="body_chunks",
            )
        if not isinstance(self.down, bool):
            raise ValidationError(f"down must be True or False, got {self.down!r}", field="down")
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 200 <= self.status <= 599:
            raise ValidationError(
                f"status must be an HTTP status from 200 to 599, got {self.status!r}; e.g. status=201",
                field="status",
            )

    def __hash__(self) -> int:
        # ``errors`` is a dict (readable as a mapping, picklable), so hash its items instead.
        return hash(
            (
                self.latency,
                tuple(sorted(self.errors.items())),
                self.retry_after,
                self.rate_limit,
                self.reset,
                self.hang,
                self.slow_body,
                self.body_chunks,
                self.down,
                self.status,
            )
        )


def parse_rate(text: object) -> Rate:
    """The fault's ``rate_limit`` text as a :class:`~buttress.resilience.Rate`, with the error naming it."""
    if not isinstance(text, str):
        raise ValidationError(
            f"rate_limit must be text like '20/s' or '600/minute', got {text!r}", field="rate_limit"
        )
    try:
        return Rate.parse(text)
    except ValidationError as exc:
        raise ValidationError(f"rate_limit: {exc.message}", field="rate_limit") from exc


def _check_errors(errors: object) -> dict[int, float]:
    if not isinstance(errors, Mapping):
        raise ValidationError(
            f"errors must map HTTP status to probability, got {errors!r}; e.g. errors={{503: 0.3}}",
            field="errors",
        )
    checked: dict[int, float] = {}
    for status, chance in errors.items():
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValidationError(
                f"errors: {status!r} is not an error status; use 400 to 599, e.g. errors={{503: 0.3}}",
                field="errors",
            )
        if isinstance(chance, bool) or not isinstance(chance, int | float) or not 0.0 <= chance <= 1.0:
            raise ValidationError(
                f"errors: the probability of {status} must be between 0 and 1, got {chance!r}; "
                "e.g. errors={503: 0.3}",
                field="errors",
            )
        checked[status] = float(chance)
    return checked


def _check_retry_after(value: object) -> None:
    if value is None or value == "date":
        return
    if isinstance(value, str):
        raise ValidationError(
            f"retry_after must be seconds, 'date' or None, got {value!r}; e.g. retry_after=1",
            field="retry_after",
        )
    _seconds(value, "retry_after", "retry_after=1 or retry_after='date'")
