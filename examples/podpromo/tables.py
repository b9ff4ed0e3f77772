"""podpromo's own tables: one result row per episode, its clips, and every run of a job body.

``runs`` is an audit: a job runs at least once (a killed worker's job runs again elsewhere), so each
start is recorded with its process id, and ``finished_at`` marks a body that got to its end.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

from buttress.db import Database

__all__ = ["METADATA", "cache_stats", "clips", "create_tables", "host_stats", "results", "runs"]

METADATA = MetaData()

results = Table(  # no index on show on purpose: the index advice on a show's page finds it
    "podpromo_results",
    METADATA,
    Column("file_id", Text, primary_key=True),
    Column("job_id", BigInteger, nullable=False),
    Column("show", Text, nullable=False),
    Column("words", Integer, nullable=False),
    Column("clips", Integer, nullable=False),
    Column("transcript_cached", Boolean, nullable=False),
    Column("thumbnail", Text),
    Column("thumbnail_error", Text),
    Column("finished_at", Float, nullable=False),
)

clips = Table(
    "podpromo_clips",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("file_id", Text, nullable=False),
    Column("n", Integer, nullable=False),
    Column("start_s", Float, nullable=False),
    Column("end_s", Float, nullable=False),
    Column("title", Text, nullable=False),
    UniqueConstraint("file_id", "n", name="uq_podpromo_clips_file_n"),
)

runs = Table(
    "podpromo_runs",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("file_id", Text, nullable=False),
    Column("job_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
)

host_stats = Table(  # what each worker's HTTP client saw per host, written by the worker as it goes
    "podpromo_host_stats",
    METADATA,
    Column("pid", Integer, primary_key=True),
    Column("host", Text, primary_key=True),
    Column("policy", Text, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("retries", Integer, nullable=False),
    Column("breaker_openings", Integer, nullable=False),
    Column("rejected_breaker", Integer, nullable=False),
    Column("limiter_waits", Integer, nullable=False),
    Column("limiter_wait_seconds", Float, nullable=False),
)

cache_stats = Table(  # each worker's cache counters per namespace, written beside its HTTP stats
    "podpromo_cache_stats",
    METADATA,
    Column("pid", Integer, primary_key=True),
    Column("namespace", Text, primary_key=True),
    Column("backend", Text, nullable=False),
    Column("lookups", Integer, nullable=False),
    Column("hits", Integer, nullable=False),
)


def create_tables(db: Database) -> None:
    """Create the tables that are missing (an app would ship an alembic revision instead).

    In a retried transaction: the app and the workers may start together, and on SQLite two processes that
    read the schema and then both write it get "database is locked" at once instead of waiting.
    """
    db.transaction(lambda session: METADATA.create_all(session.connection(), checkfirst=True))
