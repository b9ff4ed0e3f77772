"""Read a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""

from __future__ import annotations

import math
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from wall time ``now``, or None when the header is absent or unreadable.

    Delay-seconds should be an integer, but servers send ``1.5`` too, so any non-negative number is read.
    A date in the past means "now" (0). A header that is neither is ignored rather than trusted.
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC with no local zone information (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
