"""The ``cache`` section of the settings: which backend, default TTL, bounds, serializer and locks.

``backend=auto`` (the default) picks the tiered backend (memory L1 in front of Redis) when
``BUTTRESS_REDIS_URL`` is set and answers at startup, and the memory backend otherwise; the choice is
logged and shown in health. ``redis`` and ``tiered`` insist on Redis: they start degraded (serving from
memory) when it does not answer and switch over by themselves when it does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["CacheSettings"]


class CacheSettings(BaseModel):
    """How :func:`buttress.cache.get_cache` builds the process-wide cache."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["auto", "memory", "redis", "tiered"] = Field(
        default="auto",
        description=(
            "auto: tiered when BUTTRESS_REDIS_URL answers at startup, else memory; memory: this process "
            "only; redis: Redis alone; tiered: a memory L1 in front of Redis."
        ),
        examples=["tiered"],
    )
    default_ttl: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds a value lives when no ttl is given.",
        examples=[300],
    )
    max_entries: int = Field(
        default=10_000,
        ge=1,
        description="Entries the memory backend (or the L1) holds before evicting.",
        examples=[50_000],
    )
    max_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Optional bound on the estimated bytes of the memory backend (or the L1).",
        examples=[67_108_864],
    )
    prefix: str = Field(
        default="buttress:cache",
        min_length=1,
        pattern=r"^[^\s{}]+$",
        description="Prefix of every Redis key, so several services can share one Redis.",
        examples=["orders:cache"],
    )
    serializer: Literal["json", "msgpack", "pickle"] = Field(
        default="json",
        description="Value encoding in Redis; pickle needs a signing key (tampered values are refused).",
        examples=["msgpack"],
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key that signs pickled values; defaults to security.secret_key.",
        examples=["<long random string>"],
    )
    l1_ttl: float = Field(
        default=5.0,
        gt=0,
        description="Seconds the tiered backend's memory L1 keeps a value before asking Redis again.",
        examples=[2.0],
    )
    lock_lease: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a process may hold a key's compute lock; a dead holder frees it after this.",
        examples=[10],
    )
    lock_wait: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a caller waits for another process's computation before computing itself.",
        examples=[5],
    )
    socket_timeout: float = Field(
        default=0.5,
        gt=0,
        description="Seconds a Redis call may take before the cache serves from memory instead.",
        examples=[0.1],
    )
    warm_on_startup: bool = Field(
        default=True,
        description="Run the registered cache warmers in the background when the ops server starts.",
        examples=[False],
    )

    @field_validator("signing_key")
    @classmethod
    def _signing_key_long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().encode()) < 16:
            raise ValueError("at least 16 bytes; use a long random secret")
        return key
