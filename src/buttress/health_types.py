"""Health value types every layer may return: a check's result and its status.

They live in the foundation so a capability can describe its own health (a Redis store, a cache, a
queue) without importing the health registry that runs checks; ``buttress.observe.health`` re-exports
them beside the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from buttress.errors import ValidationError

__all__ = ["STATUSES", "CheckResult", "HealthStatus", "describe_exception"]

HealthStatus = Literal["pass", "warn", "fail"]
STATUSES: tuple[str, ...] = get_args(HealthStatus)
_MAX_OUTPUT = 1000


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check reports when ``None``/``True``/``False`` is not enough.

    ``output`` is shown to operators; for ``warn`` and ``fail`` say what is wrong and how to fix it.
    """

    status: HealthStatus = "pass"
    output: str = ""
    observed_value: Any = None
    observed_unit: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValidationError(
                f"CheckResult status must be one of {', '.join(STATUSES)}, got {self.status!r}",
                field="status",
            )


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` without a traceback: enough to act on, safe to show on a health endpoint."""
    message = " ".join(str(exc).split())  # one line: driver errors often span several
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return clip(text)


def clip(text: str) -> str:
    """``text`` cut to the longest output a health document shows."""
    return text if len(text) <= _MAX_OUTPUT else text[: _MAX_OUTPUT - 1] + "…"
