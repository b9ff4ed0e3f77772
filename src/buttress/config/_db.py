"""The ``db`` section of the settings: pool sizes, the timeouts the data layer sets on every connection, and
the read replicas (PostgreSQL only) with the lag and failure bounds that decide when reads leave one.

The URL itself is ``BUTTRESS_DATABASE_URL`` (the root of the tree); unset, :mod:`buttress.db` opens the
embedded SQLite file ``buttress.db`` in the working directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from buttress._redaction import mask_url_password
from buttress.config._fields import SECRET_EXAMPLE

__all__ = ["DbSettings"]


class DbSettings(BaseModel):
    """How :class:`buttress.db.Database` sizes its pools and bounds its statements."""

    # hide_input_in_errors: a rejected replica URL may carry a password
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

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
    pooler: Literal["none", "pgbouncer"] = Field(
        default="none",
        description=(
            "PostgreSQL only: what database_url points at; pgbouncer (transaction pooling): no server-side "
            "prepared statements, the statement timeout set per transaction, not per connection."
        ),
        examples=["pgbouncer"],
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

    # -- read replicas (PostgreSQL only) ---------------------------------------------------------------

    replicas: list[str] = Field(
        default_factory=list,
        description=(
            "PostgreSQL only: URLs of hot standbys serving db.session(read_only=True); "
            "empty: every read goes to the primary."
        ),
        examples=[["postgresql+psycopg://app@10.0.0.2:5432/app"]],
    )
    max_lag: float = Field(
        default=5.0,
        gt=0,
        description="Seconds a replica may trail the primary before reads leave it until it catches up.",
        examples=[2],
    )
    replica_check_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds a replica's measured lag and WAL position are reused between checks.",
        examples=[0.5],
    )
    replica_failures: int = Field(
        default=3,
        ge=1,
        description="Consecutive connection failures that open a replica's circuit breaker.",
        examples=[5],
    )
    replica_cooldown: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a replica's open breaker keeps reads away before one probe tries it again.",
        examples=[30],
    )

    @field_validator("replicas")
    @classmethod
    def _check_replicas(cls, value: list[str]) -> list[str]:
        for url in value:
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if not scheme.startswith("postgresql"):
                raise PydanticCustomError(
                    "replica_url_scheme",
                    "PostgreSQL URLs such as postgresql+psycopg://app@10.0.0.2:5432/app "
                    "(replicas are PostgreSQL only)",
                )
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, [mask_url_password(url) for url in value] if name == "replicas" else value

    cursor_key: SecretStr | None = Field(
        default=None,
        description="HMAC key that signs keyset page cursors; defaults to security.secret_key, and in "
        "development and test to a per-process random key.",
        examples=[SECRET_EXAMPLE],
    )

    @field_validator("cursor_key")
    @classmethod
    def _cursor_key_long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().encode()) < 16:
            raise ValueError("at least 16 bytes; use a long random secret")
        return key

    query_cache: bool = Field(
        default=True,
        description=(
            "Replace the version of every table a committed transaction wrote in the process cache, so "
            "db.cached() results that read it are invalidated in every process; off only if no process "
            "uses db.cached()."
        ),
        examples=[False],
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
