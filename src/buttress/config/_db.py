"""The ``db`` section of the settings: pool sizes and the timeouts the data layer sets on every connection.

The URL itself is ``BUTTRESS_DATABASE_URL`` (the root of the tree); unset, :mod:`buttress.db` opens the
embedded SQLite file ``buttress.db`` in the working directory.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from buttress.config._fields import SECRET_EXAMPLE

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
