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
    query_cache: bool = Field(
        default=True,
        description=(
            "Replace the version of every table a committed transaction wrote in the process cache, so "
            "db.cached() results that read it are invalidated in every process; off only if no process "
            "uses db.cached()."
        ),
        examples=[False],
    )
