"""The ``jobs`` section of the settings: leases, polling and the defaults of ``buttress.jobs``.

The queue lives in the database of ``BUTTRESS_DATABASE_URL`` (the embedded SQLite file when unset); these
settings only shape how workers lease, poll and keep results.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from buttress._redaction import mask_url_password

__all__ = ["JobsSettings"]


class JobsSettings(BaseModel):
    """How workers lease jobs, how often they look for work, and how long results are kept."""

    # hide_input_in_errors: a rejected listen URL may carry a password
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    lease: float = Field(
        default=30.0,
        ge=1.0,
        description="Seconds a worker holds a job without renewing it; a killed worker's jobs run again "
        "after it.",
        examples=[10],
    )
    heartbeat: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between a worker's lease renewals; unset: a third of the lease.",
        examples=[5],
    )
    poll_interval: float = Field(
        default=0.02,
        gt=0,
        le=60,
        description="Seconds an idle worker waits before looking for due jobs again (PostgreSQL wakes it "
        "at once by NOTIFY; SQLite workers in other processes rely on this).",
        examples=[0.05],
    )
    listen_url: str | None = Field(
        default=None,
        description="PostgreSQL only: a direct URL (not through a pooler) of the job database for workers' "
        "LISTEN connection; unset: the database URL, or polling when db.pooler is set.",
        examples=["postgresql://app@10.0.0.1:5432/app"],
    )
    cancel_poll_interval: float = Field(
        default=0.1,
        gt=0,
        description="Seconds between a busy worker's checks for cancelled running jobs.",
        examples=[0.25],
    )
    grace: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a stopping worker (SIGTERM) lets running jobs finish before releasing them.",
        examples=[10],
    )
    result_ttl: float = Field(
        default=86400.0,
        gt=0,
        description="Seconds a finished job (its result or error) is kept before the sweeper deletes it.",
        examples=[3600],
    )
    attempts: int = Field(
        default=3,
        ge=1,
        description="Attempts of a job that does not set its own retry policy.",
        examples=[5],
    )
    concurrency: int = Field(
        default=10,
        ge=1,
        description="Jobs one worker runs at once unless --concurrency says otherwise.",
        examples=[20],
    )
    prefetch: int | None = Field(
        default=None,
        ge=0,
        description="Jobs a worker leases beyond its free slots while its jobs run under 20 ms (they start "
        "while the database answers); unset: its concurrency; 0: never.",
        examples=[0],
    )
    eager: bool = Field(
        default=False,
        description="Run each deferred job at once, in the caller, storing nothing (for users' tests).",
        examples=[True],
    )
    auto_migrate: bool = Field(
        default=True,
        description="Create or upgrade buttress's job tables on first use (buttress db upgrade does it too).",
        examples=[False],
    )

    @field_validator("listen_url")
    @classmethod
    def _check_listen_url(cls, value: str | None) -> str | None:
        scheme = value.split("://", 1)[0].lower() if value and "://" in value else ""
        if value is not None and (not scheme.startswith("postgres") or not _parses(value)):
            raise PydanticCustomError(
                "listen_url_scheme",
                "a PostgreSQL URL such as postgresql://app@10.0.0.1:5432/app (the server, not the pooler)",
            )
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url_password(value) if name == "listen_url" and value else value


def _parses(url: str) -> bool:
    """Whether ``url``'s port is a number (SQLAlchemy would fail on it only when the worker starts)."""
    try:
        _ = urlsplit(url).port
    except ValueError:
        return False
    return True
