"""What ``/ops/db`` and ``buttress db stats`` show: pools, statements, slow log, N+1, replicas, query cache.

Everything here is read from memory (the tracker, the pools' counters, the replicas' last check): building
the report sends nothing to the database. Index advice plans statements, so it is built apart
(:func:`advice_report`) and the ops route keeps it for a while.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from sqlalchemy.pool import Pool

    from buttress.db._advice import AdviceReport
    from buttress.db._database import Database

__all__ = ["DbAdviceReport", "DbStatsReport", "PoolStats", "advice_report", "db_stats"]

TOP_STATEMENTS: Final = 20


class PoolStats(BaseModel):
    """One engine's connection pool right now."""

    size: int = Field(description="Connections kept open (pool_size).")
    checked_out: int = Field(description="Connections in use by callers.")
    idle: int = Field(description="Open connections waiting in the pool.")
    overflow: int = Field(description="Connections open beyond size; negative: pooled ones not opened yet.")
    max_overflow: int
    saturated: bool = Field(description="Every connection the pool may open is in use: the next one waits.")


class DbStatsReport(BaseModel):
    """The process's database: where it is, its pools and what its statements cost."""

    in_use: bool = Field(description="False when nothing in this process has opened the database yet.")
    backend: str | None = None
    url: str | None = Field(default=None, description="The URL with its password masked.")
    pools: dict[str, PoolStats] = Field(default_factory=dict, description="`sync` and `async` engines.")
    statements: list[dict[str, Any]] = Field(
        default_factory=list, description="The costliest statement shapes by total time (normalised SQL)."
    )
    slow: list[dict[str, Any]] = Field(
        default_factory=list, description="The slow log: parameter types only, plans with constants removed."
    )
    n_plus_one: list[dict[str, Any]] = Field(default_factory=list, description="N+1 incidents, newest last.")
    replicas: list[dict[str, Any]] = Field(default_factory=list, description="Each replica's lag and state.")
    query_cache: dict[str, Any] = Field(default_factory=dict)


class DbAdviceReport(BaseModel):
    """Index advice for the tracked workload (see ``docs/db-advice.md``)."""

    in_use: bool
    backend: str | None = None
    hypopg: bool = False
    indexes: list[dict[str, Any]] = Field(default_factory=list)
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    seconds: float = 0.0
    text: str = ""


def _pool_stats(pool: Pool, max_overflow: int) -> PoolStats | None:
    counts = [getattr(pool, name, None) for name in ("size", "checkedout", "checkedin", "overflow")]
    if any(count is None or not callable(count) for count in counts):
        return None  # a SQLite :memory: database's single-connection pool has no counters
    size, checked_out, idle, overflow = (int(count()) for count in counts)  # type: ignore[misc]
    return PoolStats(
        size=size,
        checked_out=checked_out,
        idle=idle,
        overflow=overflow,
        max_overflow=max_overflow,
        saturated=checked_out >= size + max_overflow,
    )


def _plain(value: Any) -> dict[str, Any]:
    return dataclasses.asdict(value)


def db_stats(db: Database | None, *, top: int = TOP_STATEMENTS) -> DbStatsReport:
    """The report of ``db`` (None: the process has no database open)."""
    if db is None:
        return DbStatsReport(in_use=False)
    pools = {
        name: stats
        for name, engine in (("sync", db.engine), ("async", db.async_engine.sync_engine))
        if (stats := _pool_stats(engine.pool, db.settings.max_overflow)) is not None
    }
    return DbStatsReport(
        in_use=True,
        backend=db.backend,
        url=db.urls.masked,
        pools=pools,
        statements=[_plain(stats) for stats in db.queries.top(top, by="total")],
        slow=[_plain(entry) for entry in db.queries.slow()],
        n_plus_one=[_plain(incident) for incident in db.queries.incidents()],
        replicas=db.replicas.status(),
        query_cache=db.query_cache.info(),
    )


def advice_report(db: Database | None, report: AdviceReport | None = None) -> DbAdviceReport:
    """``report`` (default: advice for ``db``'s tracked workload, planned now) as the ops model."""
    if db is None:
        return DbAdviceReport(in_use=False)
    report = report if report is not None else db.advise()
    return DbAdviceReport(
        in_use=True,
        backend=report.backend,
        hypopg=report.hypopg,
        indexes=[{**_plain(advice), "text": advice.text} for advice in report.indexes],
        skipped=[_plain(skipped) for skipped in report.skipped],
        seconds=report.seconds,
        text=report.text,
    )
