"""The readings table and its queries, on the process's ``buttress.db.Database``.

Writes go to the primary under the key ``astrology:readings``; reads open ``read_only`` sessions with the same
key, so with replicas configured they go to a standby that has replayed the last write (read-your-writes by
WAL position, across requests and processes), and without replicas to the one database. The lookup by birth
date has no index on purpose: the query tracker sees it and ``/ops/db/advice`` names the index to create.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from buttress.container import get_container
from buttress.db import Database
from buttress.errors import NotFoundError

__all__ = [
    "KEY",
    "by_birth_date",
    "create_tables",
    "database",
    "discard",
    "get_many",
    "get_reading",
    "save_pending",
    "save_texts",
]

KEY = "astrology:readings"
metadata = MetaData()
readings = Table(
    "astro_readings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch", String(32), nullable=False, index=True),  # which POST /batches wrote it
    Column("name", String(80), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sign", String(12), nullable=False),
    Column("text", String(400)),  # None until the batch job has written the reading
)


def database() -> Database:
    """The process's database (``BUTTRESS_DATABASE_URL``, else ``./buttress.db``), owned by the container."""
    return get_container().resolve(Database)


def create_tables(db: Database) -> None:
    """The app's table, if missing (the job queue makes its own on first use: ``jobs.auto_migrate``).

    A retried unit: a worker migrating the job tables at the same moment makes SQLite answer "database is
    locked" to a transaction that read before it writes; ``db.transaction`` runs it again.
    """
    db.transaction(lambda session: metadata.create_all(session.connection()))


def save_pending(db: Database, people: Sequence[tuple[str, date, str]]) -> list[int]:
    """Store ``(name, birth_date, sign)`` rows without text yet; their ids in order.

    One executemany and one SELECT of the ids by the rows' batch mark. ``INSERT ... RETURNING`` with the
    ids in order would run one INSERT per row on SQLite, which the query tracker rightly calls an N+1.
    """
    mark = uuid.uuid4().hex
    rows = [{"batch": mark, "name": name, "birth_date": born, "sign": sign} for name, born, sign in people]
    with db.session(key=KEY) as session:
        session.execute(insert(readings), rows)
        query = select(readings.c.id).where(readings.c.batch == mark).order_by(readings.c.id)
        return list(session.execute(query).scalars())


def discard(db: Database, reading_ids: list[int]) -> None:
    """Remove readings that will never be computed (their job could not be queued)."""
    with db.session(key=KEY) as session:
        session.execute(delete(readings).where(readings.c.id.in_(reading_ids)))


def save_texts(db: Database, texts: dict[int, str]) -> None:
    """Write several readings' texts in one executemany statement."""
    statement = update(readings).where(readings.c.id == bindparam("rid")).values(text=bindparam("new_text"))
    with db.session(key=KEY) as session:
        session.execute(statement, [{"rid": rid, "new_text": text} for rid, text in texts.items()])


def get_many(db: Database, reading_ids: list[int]) -> list[dict[str, Any]]:
    """The readings of ``reading_ids`` that exist, in id order, in one query."""
    with db.session(read_only=True, key=KEY) as session:
        query = select(readings).where(readings.c.id.in_(reading_ids)).order_by(readings.c.id)
        return [_plain(row) for row in session.execute(query).mappings()]


def get_reading(db: Database, reading_id: int) -> dict[str, Any]:
    with db.session(read_only=True, key=KEY) as session:
        row = session.execute(select(readings).where(readings.c.id == reading_id)).mappings().first()
    if row is None:
        raise NotFoundError("reading", reading_id)
    return _plain(row)


def by_birth_date(db: Database, born: date) -> list[dict[str, Any]]:
    """Every reading for people born on ``born`` (a sequential scan until the advised index exists)."""
    with db.session(read_only=True, key=KEY) as session:
        rows = session.execute(select(readings).where(readings.c.birth_date == born)).mappings().all()
    return [_plain(row) for row in rows]


def _plain(row: Any) -> dict[str, Any]:
    return {**{k: v for k, v in row.items() if k != "batch"}, "birth_date": row["birth_date"].isoformat()}
