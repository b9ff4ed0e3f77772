"""The astrology itself: which sign a birth date falls under, and the text of a reading.

Pure functions, so the API, the batch job and the cache warmer share them. An unknown sign is a
``NotFoundError``: the API answers it as a 404 problem carrying ``not_found`` and, in development only,
its context.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import NotFoundError
from buttress.observe.profiler import Profiler, profiled

__all__ = ["PROFILER", "SIGNS", "check_sign", "daily_text", "reading_text", "sign_for", "today"]

# Each sign with the month and day it starts on; Capricorn wraps around the new year.
_STARTS = (
    ("capricorn", 1, 1),
    ("aquarius", 1, 20),
    ("pisces", 2, 19),
    ("aries", 3, 21),
    ("taurus", 4, 20),
    ("gemini", 5, 21),
    ("cancer", 6, 21),
    ("leo", 7, 23),
    ("virgo", 8, 23),
    ("libra", 9, 23),
    ("scorpio", 10, 23),
    ("sagittarius", 11, 22),
    ("capricorn", 12, 22),
)
PROFILER = Profiler()
"""The app's profiler: ``@profiled`` binds one when it decorates, so the app hands this one to ``install``."""
SIGNS = tuple(dict.fromkeys(name for name, _, _ in _STARTS[1:]))
_MOODS = ("bold", "patient", "curious", "tender", "restless", "steady", "bright", "quiet")
_THEMES = ("work", "love", "travel", "money", "friends", "home", "health", "study")


def today(clock: Clock = SYSTEM_CLOCK) -> date:
    """The date in UTC: horoscopes change at midnight UTC, wherever the server runs."""
    return datetime.fromtimestamp(clock.time(), UTC).date()


def sign_for(birth: date) -> str:
    """The sun sign of a birth date."""
    found = _STARTS[0][0]
    for name, month, day in _STARTS:
        if (birth.month, birth.day) >= (month, day):
            found = name
    return found


def check_sign(sign: str) -> str:
    """``sign`` in lower case if it is one of the twelve; else ``NotFoundError`` naming the known ones."""
    name = sign.lower()
    if name not in SIGNS:
        raise NotFoundError("sign", sign, context={"known_signs": list(SIGNS)})
    return name


def _pick(options: tuple[str, ...], *seed: object) -> str:
    digest = hashlib.sha256("|".join(map(str, seed)).encode()).digest()
    return options[digest[0] % len(options)]


@profiled(name="astrology.reading", profiler=PROFILER)
def reading_text(name: str, birth: date) -> str:
    """A natal reading: the same person always gets the same words."""
    sign = sign_for(birth)
    mood, theme = _pick(_MOODS, name, birth), _pick(_THEMES, birth, name)
    return f"{name}, a {mood} {sign.capitalize()}, will find their strength in {theme}."


@profiled(name="astrology.daily", profiler=PROFILER)
def daily_text(sign: str, day: date, moon: str) -> str:
    """The horoscope of ``sign`` for ``day`` under the moon phase ``moon``."""
    mood, theme = _pick(_MOODS, sign, day), _pick(_THEMES, day, sign)
    return f"{sign.capitalize()}, {day.isoformat()}: a {mood} day for {theme} under a {moon} moon."
