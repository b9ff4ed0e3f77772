"""A worker process: runs the episode jobs and the cleanup schedule, and records what its HTTP client saw.

``python -m examples.podpromo worker`` is ``buttress worker --import examples.podpromo.pipeline
--import examples.podpromo.upkeep`` plus one thread that copies the client's per-host stats (retries,
breaker openings, limiter waits) and the cache's counters into podpromo's tables twice a second, so the
numbers of every worker, a killed one included, can be read from the database.
"""

from __future__ import annotations

import os
import threading

from buttress.cache import Cache
from buttress.container import get_container
from buttress.db import Database
from buttress.http import get_http_client
from buttress.jobs import get_jobs
from examples.podpromo import pipeline, upkeep  # noqa: F401 - the job types this worker runs
from examples.podpromo.tables import cache_stats, create_tables, host_stats

__all__ = ["record_host_stats", "run_worker"]


def record_host_stats(db: Database) -> int:
    """Write this process's per-host HTTP stats and cache counters; the number of hosts written."""
    pid = os.getpid()
    rows = [
        {
            "pid": pid, "host": stats.host, "policy": stats.policy, "requests": stats.requests,
            "retries": stats.retries, "breaker_openings": stats.breaker_openings,
            "rejected_breaker": stats.rejected.get("breaker", 0), "limiter_waits": stats.limiter_waits,
            "limiter_wait_seconds": stats.limiter_wait_seconds,
        }
        for stats in get_http_client().stats()
    ]  # fmt: skip
    if rows:
        db.bulk_upsert(host_stats, rows, conflict=["pid", "host"])
    report = get_container().resolve(Cache).stats()
    counters = [
        {"pid": pid, "namespace": space.namespace, "backend": report.backend.name, "lookups": space.lookups,
         "hits": space.hits + space.stale_hits}
        for space in report.namespaces
    ]  # fmt: skip
    if counters:
        db.bulk_upsert(cache_stats, counters, conflict=["pid", "namespace"])
    return len(rows)


def _record_until(db: Database, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        record_host_stats(db)


def run_worker(concurrency: int = 3) -> None:
    """Run one worker in this process until SIGTERM or SIGINT."""
    db = get_container().resolve(Database)
    create_tables(db)
    stop = threading.Event()
    recorder = threading.Thread(target=_record_until, args=(db, stop, 0.5), name="host-stats", daemon=True)
    recorder.start()
    try:
        get_jobs().worker(concurrency=concurrency).run_sync()
    finally:
        stop.set()
        recorder.join()
        record_host_stats(db)
