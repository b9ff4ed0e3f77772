"""Daily horoscopes through the process's cache, and the warmer that fills it.

The cache is the namespace ``horoscopes`` of ``buttress.cache.get_cache()``, so ``/ops/cache/stats`` reports
its hits, misses and latency with recommendations. The warmer ``daily`` runs at startup (the ops lifespan
starts it in the background) and on demand (``POST /ops/cache/warm``, admin), replacing the seed app's
startup script and its hand-kept hit counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from buttress.cache import Cache, get_cache

from .ephemeris import moon_phase
from .zodiac import SIGNS, daily_text, today

__all__ = ["NAMESPACE", "daily", "horoscopes", "register_warmer", "warm_daily"]

NAMESPACE = "horoscopes"
TTL = 6 * 3600.0


def horoscopes() -> Cache:
    return get_cache().namespaced(NAMESPACE)


def _build(sign: str, day: date) -> dict[str, Any]:
    moon, source = moon_phase(day)
    return {"sign": sign, "day": day.isoformat(), "moon": moon, "moon_source": source,
            "text": daily_text(sign, day, moon)}  # fmt: skip


def daily(sign: str, day: date) -> dict[str, Any]:
    """The horoscope of ``sign`` on ``day``; a fallback moon is not cached, so the next call asks again."""
    return horoscopes().get_or_set(
        f"{sign}:{day.isoformat()}",
        lambda: _build(sign, day),
        ttl=TTL,
        unless=lambda found: found["moon_source"] == "fallback",
    )


def warm_daily() -> Iterator[tuple[int, int]]:
    """Today's twelve horoscopes, computed afresh and stored, yielding ``(done, total)`` as progress."""
    day, cache = today(), horoscopes()
    for done, sign in enumerate(SIGNS, start=1):
        cache.set(f"{sign}:{day.isoformat()}", _build(sign, day), ttl=TTL)
        yield done, len(SIGNS)


def register_warmer(cache: Cache) -> None:
    """Make ``warm_daily`` the warmer ``daily`` of ``cache`` (run at startup and by the admin endpoint)."""
    cache.warmer("daily")(warm_daily)
