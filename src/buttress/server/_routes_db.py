"""The database on the ops server: ``GET /db`` (pools, statements, slow log, N+1, replicas, query cache)
and ``GET /db/advice`` (index advice for the tracked workload).

Both describe the process's :class:`~buttress.db.Database` only if something opened it (or
``BUTTRESS_DATABASE_URL`` names one): asking never creates the embedded SQLite file. ``/db`` reads memory
only. ``/db/advice`` plans statements on the database, so one answer is kept for :data:`ADVICE_TTL`
seconds and shared by every caller meanwhile; SQL in both is normalised (constants out) and parameters
appear as their types, never their values.
"""

# No `from __future__ import annotations`: FastAPI evaluates the endpoint annotations.

import threading
from typing import Any, Final

from fastapi import APIRouter

from buttress.container import get_container
from buttress.db import Database, DbAdviceReport, DbStatsReport, advice_report, db_stats
from buttress.server._ops import Ops

__all__ = ["ADVICE_TTL", "db_router"]

ADVICE_TTL: Final = 60.0
"""Seconds one index-advice answer is reused before the workload is planned again."""


def _database(ops: Ops) -> Database | None:
    container = get_container()
    db = container.peek(Database)
    if db is None and ops.settings.database_url:
        db = container.resolve(Database)
    return db


def db_router(ops: Ops, route_class: type) -> APIRouter:
    router = APIRouter(tags=["database"], route_class=route_class)
    lock = threading.Lock()
    kept: dict[str, Any] = {}

    @router.get("/db", summary="Database", response_model=DbStatsReport)
    def stats() -> DbStatsReport:
        """Pools, the costliest statements, the slow log, N+1 incidents, replicas and the query cache."""
        return db_stats(_database(ops))

    @router.get("/db/advice", summary="Index advice", response_model=DbAdviceReport)
    def advice() -> DbAdviceReport:
        """Indexes worth creating for the tracked workload, verified with hypopg where it is installed."""
        db = _database(ops)
        now = ops.clock.monotonic()
        with lock:  # one planning run at a time; callers meanwhile share its answer
            if kept.get("db") is db and now - kept.get("at", -ADVICE_TTL) < ADVICE_TTL:
                report: DbAdviceReport = kept["report"]
                return report
            report = advice_report(db)
            kept.update(db=db, at=now, report=report)
            return report

    return router
