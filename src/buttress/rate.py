"""A rate as a number of events per period, parsed from text such as ``"60/minute"`` or ``"60/90s"``.

Config files and environment variables carry rates as text; :meth:`Rate.parse` turns that into a
``Rate`` or says exactly what it expected, and :meth:`Rate.to_text` writes one back. A foundation module:
the settings store a parsed ``Rate`` and the limiter consumes it, neither importing the other.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from buttress.errors import ValidationError

__all__ = ["MIN_INTERVAL", "Rate"]

_UNITS: Final[dict[str, float]] = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
_PATTERN: Final = re.compile(
    r"\s*(?P<limit>\d+)\s*(?:/|per\s)\s*(?P<count>\d+(?:\.\d+)?|\.\d+)?\s*(?P<unit>[a-z]+)\s*",
    re.IGNORECASE,
)
_EXAMPLES: Final = "'60/minute', '10/s', '100/hour', '1000/day' or '60/90s'"
MIN_INTERVAL: Final = 1e-6
"""The shortest interval between events: one microsecond, the resolution of Redis ``TIME``."""
_NAMED_PERIODS: Final = {0.001: "ms", 1.0: "s", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` events per ``period`` seconds; ``Rate(60, 60.0)`` is 60 per minute."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValidationError(
                f"limit must be an integer >= 1 (events per period), got {self.limit!r}; e.g. Rate(60, 60.0)",
                field="limit",
            )
        period = self.period
        if isinstance(period, bool) or not isinstance(period, int | float) or not math.isfinite(period):
            period = 0.0
        if period <= 0:
            raise ValidationError(
                f"period must be a finite number of seconds > 0, got {self.period!r}; e.g. Rate(60, 60.0)",
                field="period",
            )
        object.__setattr__(self, "period", float(period))
        if self.interval < MIN_INTERVAL:
            raise ValidationError(
                f"rate {self} allows more than one event per microsecond, finer than the limiter's clock; "
                "use at most 1,000,000 per second, e.g. Rate(1000, 1.0)",
                field="rate",
            )

    @classmethod
    def parse(cls, text: str) -> Rate:
        """A rate from ``"<limit>/<unit>"`` or ``"<limit>/<count><unit>"`` (units ms, s, m, h, d, spelled
        out or short, e.g. ``"10/s"``, ``"5/second"``, ``"60/minute"``, ``"60/90s"``, ``"100 per hour"``)."""
        value: object = text  # callers from config may pass anything
        if not isinstance(value, str):
            raise ValidationError(
                f"rate must be a Rate or text like {_EXAMPLES}, got {type(value).__name__} {value!r}",
                field="rate",
            )
        match = _PATTERN.fullmatch(value)
        unit = _UNITS.get(match["unit"].lower()) if match else None
        if match is None or unit is None:
            raise ValidationError(
                "rate must look like <limit>/<unit> or <limit>/<count><unit> with a unit of ms, s, m, h "
                f"or d (or second, minute, hour, day), got {text!r}; e.g. {_EXAMPLES}",
                field="rate",
            )
        count = float(match["count"]) if match["count"] else 1.0
        if count <= 0:
            raise ValidationError(
                f"rate period must be longer than zero, got {text!r}; e.g. '60/90s'", field="rate"
            )
        return cls(int(match["limit"]), count * unit)

    @property
    def interval(self) -> float:
        """Seconds between two events at this rate (``period / limit``)."""
        return self.period / self.limit

    def to_text(self) -> str:
        """The rate as config text that :meth:`parse` reads back to an equal rate.

        A named period where there is one (``"60/minute"``, ``"10/s"``), else seconds (``"60/90s"``).
        """
        unit = _NAMED_PERIODS.get(self.period)
        if unit is not None:
            return f"{self.limit}/{unit}"
        seconds = format(Decimal(repr(self.period)), "f")  # exact and never in exponent form
        return f"{self.limit}/{seconds.removesuffix('.0')}s"

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"
