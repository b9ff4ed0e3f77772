"""One JSON document with everything the live dashboard shows, for the ``ops.snapshot`` realtime feed.

:func:`build_snapshot` gathers what the ops server's JSON routes answer (health, breakers, limiters, cache,
queues and jobs, storage, database, system, error groups) by calling the same functions, so the page and
the API never disagree. It runs in a worker thread about once a second while someone watches, so it reads
memory and at most three small queries, and each section fails alone: a database outage shows as that
section's ``error`` while the rest of the page stays live.

``admin=False`` is what an anonymous reader of the JSON routes sees, never more: job arguments, results,
errors and keys, file owners, and error groups' messages and tracebacks are left out (unless the server
exposes details, as in development, where the routes show them too).

Health checks can touch every dependency and have timeouts of seconds, so they do not run per snapshot:
the latest report is reused for :data:`HEALTH_EVERY` seconds and refreshed on a thread of its own.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

from buttress.composition import db_installed
from buttress.observe.health import HealthReport
from buttress.resilience import live_breakers, live_limiters
from buttress.server._ops import Ops

__all__ = ["HEALTH_EVERY", "SHOWN", "build_snapshot"]

_log = logging.getLogger("buttress.server")

HEALTH_EVERY: Final = 5.0
"""Seconds one health report is shown before the checks run again."""

SHOWN: Final = 10
"""Rows per list (statements, slow log, error groups, limiters, ended jobs): a page, not an archive."""

_ACTIVE_JOBS: Final = 25
_NO_DETAILS: Final = {"message": "", "sample_message": "", "traceback": ""}
_FIRST_HEALTH_WAIT: Final = 1.0


def build_snapshot(ops: Ops, admin: bool) -> dict[str, Any]:
    """Everything the dashboard shows, JSON-safe (no NaN or infinity); ``admin`` adds the details.

    Each section is a dict; a capability this process does not have reads ``{"available": false}`` and
    a section that failed reads ``{"error": "<type>: <message>"}``.
    """
    details = admin or ops.expose_details
    sections: dict[str, Callable[[], Any]] = {
        "health": lambda: _health(ops),
        "breakers": _breakers,
        "limiters": _limiters,
        "cache": _cache,
        "jobs": lambda: _jobs(ops, details=details),
        "storage": lambda: _storage(ops, details=details),
        "db": lambda: _db(ops),
        "system": ops.sampler.snapshot,
        "errors": lambda: _errors(ops, details=details),
    }
    snapshot: dict[str, Any] = {
        "time": ops.clock.time(),
        "admin": admin,
        "details": details,
        "admin_actions": admin and ops.auth.configured,
        "info": ops.info(),
    }
    for name, gather in sections.items():
        try:
            snapshot[name] = gather()
        except Exception as exc:  # noqa: BLE001 - one failing section must not blank the whole page
            _log.debug("dashboard section %s failed", name, exc_info=True)
            snapshot[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    safe: dict[str, Any] = _json_safe(snapshot)
    return safe


# -- sections ----------------------------------------------------------------------------------------------


def _breakers() -> list[dict[str, Any]]:
    rows = []
    for breaker in live_breakers():
        try:
            rows.append(breaker.snapshot().to_dict())
        except Exception:  # noqa: BLE001, S112 - a shared breaker not named yet has no state: as GET /breakers
            continue
    return sorted(rows, key=lambda row: str(row["name"]))


def _limiters() -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    total = 0
    for limiter in sorted(live_limiters(), key=lambda limiter: limiter.name):
        keys = sorted(limiter.keys())
        total += len(keys)
        rows.extend(limiter.snapshot(key).to_dict() for key in keys[: max(SHOWN - len(rows), 0)])
    return {"rows": rows, "total": total}


def _cache() -> dict[str, Any]:
    from buttress.cache import cache_stats, get_cache  # noqa: PLC0415 - as GET /cache/stats

    report = cache_stats(get_cache()).model_dump(mode="json")
    return {
        "backend": report["backend"],
        "namespaces": report["namespaces"],
        "warmers": report["warmers"],
        "recommendations": report["recommendations"][:SHOWN],
    }


def _jobs(ops: Ops, *, details: bool) -> dict[str, Any]:
    if not db_installed():
        return {"available": False}
    from buttress.jobs import JobStatus  # noqa: PLC0415 - only with the [jobs] extra
    from buttress.server._routes_jobs import job_view, jobs_in_use  # noqa: PLC0415 - SQLAlchemy

    jobs = jobs_in_use(ops)
    if jobs is None:
        return {"available": False}
    active = (JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.RETRYING)
    ended = (JobStatus.FAILED, JobStatus.DEAD, JobStatus.CANCELLED, JobStatus.SUCCEEDED)
    return {
        "available": True,
        **jobs.stats().to_dict(),
        "active": [job_view(info, details=details) for info in jobs.list(status=active, limit=_ACTIVE_JOBS)],
        "ended": [job_view(info, details=details) for info in jobs.list(status=ended, limit=SHOWN)],
    }


def _storage(ops: Ops, *, details: bool) -> dict[str, Any]:
    if not db_installed():
        return {"available": False}
    from buttress.server._routes_files import files_in_use, files_installed  # noqa: PLC0415 - as jobs

    store = files_in_use(ops) if files_installed() else None
    if store is None:
        return {"available": False}
    data = store.stats().to_dict()
    if not details:
        data["owners"] = None
    return {"available": True, **data, "details": details}


def _db(ops: Ops) -> dict[str, Any]:
    if not db_installed():
        return {"available": False}
    from buttress.db import db_stats  # noqa: PLC0415 - SQLAlchemy, only with the extra
    from buttress.server._routes_db import _database  # noqa: PLC0415 - the same lookup as GET /db

    report = db_stats(_database(ops), top=SHOWN).model_dump(mode="json")
    if not report["in_use"]:
        return {"available": False}
    return {
        "available": True,
        "backend": report["backend"],
        "pools": report["pools"],
        "statements": report["statements"][:SHOWN],
        "slow": report["slow"][-SHOWN:][::-1],  # newest first
    }


def _errors(ops: Ops, *, details: bool) -> dict[str, Any]:
    snapshot = ops.errors.snapshot(SHOWN)
    if not details:  # as GET /errors for an anonymous reader
        for group in snapshot["groups"]:
            group.update(_NO_DETAILS)
            group["context"] = {}
    return {**snapshot, "details": details}


# -- health, refreshed in the background ------------------------------------------------------------------


class _HealthCache:
    """The latest health report of one app, refreshed on a thread when older than :data:`HEALTH_EVERY`."""

    def __init__(self, ops: Ops) -> None:
        self._ops = ops
        self._lock = threading.Lock()
        self._report: dict[str, Any] | None = None
        self._at = -math.inf
        self._running: threading.Thread | None = None

    def get(self) -> dict[str, Any] | None:
        now = self._ops.clock.monotonic()
        with self._lock:
            stale = now - self._at >= HEALTH_EVERY
            if stale and self._running is None:
                self._at = now  # the next refresh is due from this start, whatever the checks take
                self._running = threading.Thread(target=self._refresh, name="buttress-dashboard-health")
                self._running.daemon = True
                self._running.start()
            first = self._running if self._report is None else None
        if first is not None:  # the very first snapshot waits a little, so the page opens with a status
            first.join(_FIRST_HEALTH_WAIT)
        with self._lock:
            return self._report

    def _refresh(self) -> None:
        try:
            report: HealthReport = self._ops.health.run_sync()
            document = report.to_dict()
        except Exception as exc:  # noqa: BLE001 - shown on the page, like a failed check
            document = {"status": "fail", "error": f"{type(exc).__name__}: {exc}"[:300]}
        with self._lock:
            self._report = document
            self._running = None


_health_caches: weakref.WeakKeyDictionary[Ops, _HealthCache] = weakref.WeakKeyDictionary()
_health_caches_lock = threading.Lock()


def _health(ops: Ops) -> dict[str, Any]:
    with _health_caches_lock:
        cache = _health_caches.get(ops)
        if cache is None:
            cache = _health_caches[ops] = _HealthCache(ops)
    report = cache.get()
    return report if report is not None else {"status": "pending"}


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity and no tuples: a non-finite float reads null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
