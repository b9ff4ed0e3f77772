"""Summaries in the database: written in batches (one retried transaction each), read in keyset pages.

``bulk_upsert`` writes a batch as one chunk, so a batch is all or nothing: a busy SQLite file, a
serialization failure, a deadlock or a lost PostgreSQL connection rolls the batch back and runs it again
through the database's retry; nothing of a failed attempt stays behind. ``paginate`` seeks from the last
row seen, so listing page 50 costs what page 1 costs and rows written meanwhile are never skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import Column, Float, Integer, MetaData, Table, Text, func, select

from buttress.db import Database, Page

__all__ = ["SummaryStore", "summaries_table"]


def summaries_table(name: str = "summaries") -> Table:
    """One row per URL; a page summarised again replaces its row."""
    return Table(
        name,
        MetaData(),
        Column("url", Text, primary_key=True),
        Column("host", Text, nullable=False),
        Column("summary", Text, nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("cost", Float, nullable=False),
        Column("created_at", Float, nullable=False),
    )


class SummaryStore:
    """The summaries table of one database."""

    def __init__(self, db: Database, table: str = "summaries") -> None:
        self.db = db
        self.table = summaries_table(table)

    def create(self) -> None:
        """Create the table if missing; a database that cannot be opened raises BackendUnavailable."""
        self.db.check()  # at once, rather than after the retries of a transaction
        self.db.transaction(lambda session: self.table.metadata.create_all(session.connection()))

    def drop(self) -> None:
        self.table.metadata.drop_all(self.db.engine)

    def write(self, rows: Iterable[Mapping[str, Any]], batch_size: int) -> int:
        """Upsert ``rows``, ``batch_size`` per transaction; returns the rows written."""
        written = 0
        for batch in _batches(rows, batch_size):
            written += self.db.bulk_upsert(self.table, batch, conflict=["url"], chunk_size=batch_size).rows
        return written

    def page(self, *, after: str | None = None, limit: int = 20) -> Page[dict[str, Any]]:
        """Newest first (ties by URL); pass the previous page's ``next`` as ``after``."""
        return self.db.paginate(
            select(self.table), order_by=[self.table.c.created_at.desc()], after=after, limit=limit
        )

    def count(self) -> int:
        with self.db.session() as session:
            return int(session.execute(select(func.count()).select_from(self.table)).scalar_one())


def _batches(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[Sequence[Mapping[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch
