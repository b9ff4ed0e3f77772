"""When a schedule fires: cron, intervals and daily wall-clock times, with time zones; pure and I/O-free.

A :class:`ScheduleSpec` turns "0 9 * * 1-5 in Europe/London", "every 60 s" or "at 09:00, 15:00 and 21:00"
into fire instants (float epoch seconds). Time is passed in, so every scheduler process computes
bit-identical instants for the same schedule and the database's unique (schedule, fire_at) key does the
deduplication.

Daylight saving, for wall-clock times (``at=``, and cron with a fixed minute and hour, as Debian cron does):
a time that does not exist (spring forward) fires once, at the instant the clocks jump; a time that exists
twice (fall back) fires once, at its first occurrence. A cron whose minute or hour is a wildcard
("*/15 * * * *") counts real time instead, so it keeps its rhythm through the change. ``every=`` ignores
time zones: it fires at ``anchor + k * every``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from buttress.errors import ValidationError

__all__ = ["CATCH_UP_LIMIT", "CatchUp", "ScheduleSpec"]

CatchUp = Literal["skip", "once", "all"]
_CATCH_UPS: tuple[CatchUp, ...] = ("skip", "once", "all")

CATCH_UP_LIMIT = 1000
"""``catch_up="all"`` gives at most this many fires per call, oldest first; the next call goes on."""

_AT_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DAY = timedelta(days=1)
_CRON_EXAMPLE = (
    "e.g. cron='0 9 * * 1-5' (09:00 on weekdays) or cron='*/10 * * * * *' (every 10 s, seconds first)"
)
# cronsim gives up after 50 years without a match; we turn that into "never" (math.inf).
_NEVER = math.inf


def _fail(field: str, message: str) -> ValidationError:
    return ValidationError(message, field=field)


def _zone(tz: object) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise _fail(
            "tz", f"tz must be an IANA time zone name, got {tz!r}; e.g. tz='Europe/London' or tz='UTC'"
        )
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _fail(
            "tz",
            f"tz {tz!r} is not a known IANA time zone ({exc}); e.g. tz='Europe/London' or tz='UTC'",
        ) from None


def _seconds(every: object) -> float:
    if isinstance(every, timedelta):
        value = every.total_seconds()
    elif isinstance(every, int | float) and not isinstance(every, bool):
        value = float(every)
    else:
        raise _fail("every", f"every must be seconds (a number) or a timedelta, got {every!r}; e.g. every=60")
    if not math.isfinite(value) or value <= 0:
        raise _fail("every", f"every must be > 0 seconds, got {every!r}; e.g. every=timedelta(minutes=5)")
    return value


def _times(at: object) -> tuple[int, ...]:
    items: Iterable[object]
    if isinstance(at, str):
        items = [at]
    elif isinstance(at, list | tuple | set | frozenset):
        items = at
    else:
        raise _fail(
            "at",
            f"at must be a list of daily times 'HH:MM' or 'HH:MM:SS', got {at!r}; e.g. at=['09:00', '15:00']",
        )
    out: set[int] = set()
    for item in items:
        match = _AT_RE.match(item) if isinstance(item, str) else None
        h, m, s = (
            (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)) if match else (99, 0, 0)
        )
        if h > 23 or m > 59 or s > 59:
            raise _fail(
                "at",
                f"at has {item!r}, which is not a time of day 'HH:MM' or 'HH:MM:SS' (00:00 to 23:59:59); "
                "e.g. at=['09:00', '21:30']",
            )
        out.add(h * 3600 + m * 60 + s)
    if not out:
        raise _fail("at", "at must name at least one daily time; e.g. at=['09:00', '15:00', '21:00']")
    return tuple(sorted(out))


def _cron(cron: object) -> tuple[str, bool]:
    """The normalised expression, and whether it names wall-clock times (fixed minute and hour)."""
    if not isinstance(cron, str):
        raise _fail("cron", f"cron must be a string, got {cron!r}; {_CRON_EXAMPLE}")
    parts = cron.split()
    if len(parts) not in (5, 6):
        raise _fail(
            "cron",
            f"cron {cron!r} has {len(parts)} fields; give 5 (minute hour day-of-month month day-of-week) "
            f"or 6 (seconds first); {_CRON_EXAMPLE}",
        )
    expr = " ".join(parts)
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise _fail(
            "cron", f"cron {cron!r} is not a valid cron expression ({exc}); {_CRON_EXAMPLE}"
        ) from None
    minute, hour = parts[-5], parts[-4]
    return expr, not minute.startswith("*") and not hour.startswith("*")


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _fmt_time(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def _wall_to_instant(wall: datetime, zone: ZoneInfo) -> float:
    """The instant a naive local time names: its first occurrence if repeated, the jump if it is skipped."""
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return first.timestamp()
    # A spring-forward gap: fold=0 and fold=1 straddle the transition; find the first instant whose local time
    # is at or past the wall time (the moment the clocks jump).
    a, b = sorted((first.timestamp(), wall.replace(tzinfo=zone, fold=1).timestamp()))
    lo, hi = math.floor(a), math.ceil(b)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return float(hi)


def _local(instant: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(instant, zone)


@dataclass(frozen=True, init=False, repr=False)
class ScheduleSpec:
    """One schedule's fire times: exactly one of ``cron=``, ``every=`` or ``at=``; ``tz`` defaults to UTC.

    ``text`` is the canonical form stored beside the schedule ("cron 0 9 * * * Europe/London", "every 60s",
    "at 09:00,15:00 UTC") and ``digest`` its hash: a changed digest means the schedule changed in code.
    """

    kind: Literal["cron", "every", "at"]
    cron: str | None
    every: float | None
    at: tuple[int, ...]
    tz: str
    text: str
    digest: str
    _wall: bool

    def __init__(
        self,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        at: Iterable[str] | str | None = None,
        tz: str = "UTC",
    ) -> None:
        given = [name for name, value in (("cron", cron), ("every", every), ("at", at)) if value is not None]
        if len(given) != 1:
            raise _fail(
                "schedule",
                "give exactly one of cron=, every= or at="
                + (f" (got {', '.join(given)})" if given else "")
                + "; e.g. cron='0 9 * * *', every=60 or at=['09:00', '21:00']",
            )
        zone = _zone(tz)
        expr: str | None = None
        wall, seconds, times = False, None, tuple[int, ...]()
        if cron is not None:
            expr, wall = _cron(cron)
            kind: Literal["cron", "every", "at"] = "cron"
            text = f"cron {expr} {zone.key}"
        elif every is not None:
            seconds, kind = _seconds(every), "every"
            zone = ZoneInfo("UTC")  # intervals count real seconds; a zone would only make equal specs differ
            text = f"every {_fmt_seconds(seconds)}s"
        else:
            times, kind, wall = _times(at), "at", True
            text = f"at {','.join(_fmt_time(t) for t in times)} {zone.key}"
        for name, value in (
            ("kind", kind),
            ("cron", expr),
            ("every", seconds),
            ("at", times),
            ("tz", zone.key),
            ("text", text),
            ("digest", hashlib.sha256(text.encode()).hexdigest()[:16]),
            ("_wall", wall),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def from_text(cls, text: str) -> ScheduleSpec:
        """Rebuild a spec from its canonical ``text`` (as stored in the schedules table)."""
        kind, _, rest = text.strip().partition(" ")
        if kind == "every" and rest.endswith("s"):
            return cls(every=float(rest[:-1]))
        body, _, tz = rest.rpartition(" ")
        if kind == "cron" and body:
            return cls(cron=body, tz=tz)
        if kind == "at" and body:
            return cls(at=body.split(","), tz=tz)
        raise _fail(
            "spec", f"{text!r} is not a schedule's canonical text; e.g. 'cron 0 9 * * * UTC' or 'every 60s'"
        )

    def __repr__(self) -> str:
        return f"ScheduleSpec({self.text!r})"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    # -- fire times ------------------------------------------------------------------------------------------

    def next_fire(self, after: float, anchor: float = 0.0) -> float:
        """The first fire strictly after ``after`` (``math.inf`` if the cron never matches again).

        ``anchor`` only matters for ``every``: fires fall at ``anchor + k * every``.
        """
        if self.every is not None:
            k = math.floor((after - anchor) / self.every) + 1
            while anchor + (k - 1) * self.every > after:
                k -= 1
            while anchor + k * self.every <= after:
                k += 1
            return anchor + k * self.every
        if self.kind == "at":
            return self._at_next(after)
        return self._cron_next(after)

    def previous_fire(self, at_or_before: float, anchor: float = 0.0) -> float | None:
        """The latest fire at or before ``at_or_before``, or None if cron's 50-year search finds none."""
        t = at_or_before
        if self.every is not None:
            k = math.floor((t - anchor) / self.every)
            while anchor + k * self.every > t:
                k -= 1
            while anchor + (k + 1) * self.every <= t:
                k += 1
            return anchor + k * self.every
        candidate = self._at_previous(t) if self.kind == "at" else self._cron_previous(t)
        if candidate is None:
            return None
        # Walk forward over fires a backward search in local time can miss (first pass of a repeated hour).
        while (following := self.next_fire(candidate)) <= t:
            candidate = following
        return candidate

    def fires_between(self, start: float, end: float, anchor: float = 0.0) -> Iterator[float]:
        """Fires in ``(start, end]``, in order; equal to calling :meth:`next_fire` repeatedly."""
        fire = self.next_fire(start, anchor)
        while fire <= end:
            yield fire
            fire = self.next_fire(fire, anchor)

    def due_fires(
        self,
        last_fire: float | None,
        anchor: float,
        now: float,
        *,
        catch_up: CatchUp = "once",
        window: float = 3600.0,
        grace: float = 60.0,
        limit: int = CATCH_UP_LIMIT,
    ) -> list[float]:
        """The fires to create at ``now``: fires after ``max(last_fire, anchor)``, up to ``now``, by policy.

        ``skip``: the latest missed fire if it is at most ``grace`` old (a late wake-up still fires; a
        restart after a long outage does not replay). ``once``: the latest missed fire if at most
        ``max(window, grace)`` old, so any amount of downtime costs one run. ``all``: every missed fire at
        most ``window`` old, oldest first, at most ``limit`` per call (the caller records the last one and
        gets the rest on its next call).
        """
        if catch_up not in _CATCH_UPS:
            raise _fail(
                "catch_up",
                f"catch_up must be 'skip', 'once' or 'all', got {catch_up!r}; e.g. catch_up='once'",
            )
        for name, value in (("catch_up_window", window), ("misfire_grace", grace)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
                raise _fail(name, f"{name} must be a number of seconds >= 0, got {value!r}; e.g. 3600")
        lower = anchor if last_fire is None else max(last_fire, anchor)
        if now <= lower:
            return []
        if catch_up == "all":
            # nextafter: a fire exactly `window` old still counts.
            start = max(lower, math.nextafter(now - window, -math.inf))
            return list(islice(self.fires_between(start, now, anchor), max(limit, 1)))
        latest = self.previous_fire(now, anchor)
        if latest is None or latest <= lower:
            return []
        horizon = grace if catch_up == "skip" else max(window, grace)
        return [latest] if now - latest <= horizon else []

    # -- daily times -----------------------------------------------------------------------------------------

    def _at_instants(self, day: date) -> Iterator[float]:
        zone = self.zone
        midnight = datetime.combine(day, time())
        for seconds in self.at:
            yield _wall_to_instant(midnight + timedelta(seconds=seconds), zone)

    def _at_next(self, after: float) -> float:
        day = _local(after, self.zone).date() - _DAY
        while True:
            for fire in self._at_instants(day):
                if fire > after:
                    return fire
            day += _DAY

    def _at_previous(self, t: float) -> float:
        day = _local(t, self.zone).date() + _DAY
        while True:
            for fire in reversed(list(self._at_instants(day))):
                if fire <= t:
                    return fire
            day -= _DAY

    # -- cron ------------------------------------------------------------------------------------------------

    def _cron_iter(self, start: float, *, reverse: bool) -> Iterator[float]:
        """Cron matches from ``start`` as instants: naive local times mapped by the DST rule, or real time."""
        expr = self.cron or ""
        zone = self.zone
        local = _local(start, zone)
        if self._wall:
            walls = CronSim(expr, local.replace(tzinfo=None), reverse=reverse)
            while True:
                try:
                    yield _wall_to_instant(next(walls), zone)
                except StopIteration:
                    return
        else:
            moments = CronSim(expr, local, reverse=reverse)
            while True:
                try:
                    yield next(moments).timestamp()
                except StopIteration:
                    return

    def _cron_next(self, after: float) -> float:
        # Matches come in local-time order; in a repeated hour the first few can map to instants already past.
        for fire in self._cron_iter(after, reverse=False):
            if fire > after:
                return fire
        return _NEVER

    def _cron_previous(self, t: float) -> float | None:
        # cronsim searches backwards strictly before its start second: start one second after floor(t).
        for fire in self._cron_iter(math.floor(t) + 1, reverse=True):
            if fire <= t:
                return fire
        return None
