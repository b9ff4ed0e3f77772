"""The jobs table as SQLAlchemy Core sees it, for the one statement that needs it: the many-row insert.

Revision ``0002`` (``buttress/db/migrations/versions/r0002_jobs.py``) owns the schema; this mirrors the
columns a defer writes, so SQLAlchemy can send many rows in one INSERT and return their ids in order.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, Table, Text

__all__ = ["JOBS"]

_META = MetaData()

JOBS: Final = Table(
    "buttress_jobs",
    _META,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("queue", Text, nullable=False),
    Column("task", Text, nullable=False),
    Column("args", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("run_at", Float(precision=53), nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("idem_key", Text),
    Column("timeout", Float(precision=53)),
    Column("result_ttl", Float(precision=53)),
    Column("created_at", Float(precision=53), nullable=False),
    Column("schedule", Text),
    Column("fire_at", Float(precision=53)),
)
