"""The ``db`` section of the settings: pool sizes and the timeouts the data layer sets on every connection.

The URL itself is ``BUTTRESS_DATABASE_URL`` (the root of the tree); unset, :mod:`buttress.db` opens the
embedded SQLite file ``buttress.db`` in the working directory.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DbSettings"]


class DbSettings(BaseModel):
    """How :class:`buttress.db.Database` sizes its pools and bounds its statements."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool_size: int = Field(
        default=5,
        ge=1,
        description="Connections each engine (sync and async) keeps open in its pool.",
        examples=[10],
    )
    max_overflow: int = Field(
        default=10,
        ge=0,
        description="Connections an engine may open beyond pool_size under load (closed when returned).",
        examples=[20],
    )
    pool_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a caller waits for a free pooled connection before failing.",
        examples=[5],
    )
    statement_timeout: float | None = Field(
        default=30.0,
        gt=0,
        description="PostgreSQL only: seconds a statement may run before the server cancels it; unset: none.",
        examples=[5],
    )
    busy_timeout: float = Field(
        default=5.0,
        ge=0,
        description="SQLite only: seconds a connection waits for another writer's lock before failing.",
        examples=[10],
    )
    transaction_attempts: int = Field(
        default=10,
        ge=1,
        description="Attempts of db.transaction on serialization failures, deadlocks and lost connections.",
        examples=[5],
    )

    # -- query tracking (buttress.db.queries) -------------------------------------------------------------

    track_queries: bool = Field(
        default=True,
        description="Keep per-statement statistics, the slow log and N+1 incidents (db.queries).",
        examples=[False],
    )
    slow_query_ms: float = Field(
        default=100.0,
        ge=0,
        description="Milliseconds from which a statement goes to the slow log (and is explained).",
        examples=[250],
    )
    explain_slow: bool = Field(
        default=True,
        description="Capture the plan of a slow statement (EXPLAIN, never ANALYZE) on its own connection.",
        examples=[False],
    )
    n_plus_one_threshold: int = Field(
        default=10,
        ge=2,
        description="Runs of one statement from one line of code, in one scope, that make an N+1 incident.",
        examples=[20],
    )
    max_fingerprints: int = Field(
        default=1000,
        ge=1,
        description="Statement shapes tracked; statements of further shapes count in one overflow entry.",
        examples=[5000],
    )
    slow_log_size: int = Field(
        default=100,
        ge=1,
        description="Slow statements kept in memory (the newest; older ones drop off).",
        examples=[500],
    )
    incident_log_size: int = Field(
        default=100,
        ge=1,
        description="N+1 incidents kept in memory (the newest; older ones drop off).",
        examples=[500],
    )
