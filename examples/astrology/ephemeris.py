"""The moon phase of a day: from the ephemeris service when one is configured, else computed here.

The service is called through buttress's process-wide ``HttpClient``, so its host gets retries, a deadline
and a circuit breaker (``http:<host>``, listed and switched at ``/ops/breakers``). When the call fails or
its breaker is open, the phase is computed locally and marked ``fallback``, so the API degrades instead of
failing.
"""

from __future__ import annotations

import os
from datetime import date

from buttress.errors import ButtressError
from buttress.http import get_http_client

__all__ = ["EPHEMERIS_ENV", "local_phase", "moon_phase"]

EPHEMERIS_ENV = "ASTRO_EPHEMERIS_URL"
_PHASES = ("new", "waxing crescent", "first quarter", "waxing gibbous", "full", "waning gibbous",
           "last quarter", "waning crescent")  # fmt: skip
_SYNODIC_DAYS = 29.530588
_KNOWN_NEW_MOON = date(2000, 1, 6)


def local_phase(day: date) -> str:
    """The phase from the mean synodic month: right to within a day, which a horoscope can afford."""
    age = ((day - _KNOWN_NEW_MOON).days % _SYNODIC_DAYS) / _SYNODIC_DAYS
    return _PHASES[int(age * len(_PHASES) + 0.5) % len(_PHASES)]


def moon_phase(day: date) -> tuple[str, str]:
    """``(phase, source)``; source is ``ephemeris``, ``local`` (no service configured) or ``fallback``."""
    base = os.environ.get(EPHEMERIS_ENV)
    if not base:
        return local_phase(day), "local"
    try:
        response = get_http_client().get(f"{base.rstrip('/')}/moon", params={"date": day.isoformat()})
    except ButtressError:  # retries spent, breaker open, deadline passed: degrade, do not fail
        return local_phase(day), "fallback"
    phase = response.json().get("phase")
    return (phase if isinstance(phase, str) else local_phase(day)), "ephemeris"
