"""The one table: a listening event per row (who played which track, when, for how long)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, Table, Text

from buttress.db import Database

__all__ = ["create_schema", "metadata", "plays"]

metadata: Final = MetaData()
plays: Final = Table(
    "music_plays",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("user_id", Text, nullable=False),
    Column("track_id", Text, nullable=False),
    Column("artist_id", Text, nullable=False),
    Column("played_at", DateTime(timezone=True), nullable=False),
    Column("ms_played", Integer, nullable=False),
    Index("music_plays_user", "user_id", "track_id"),
)


def create_schema(db: Database) -> None:
    """Create the table if missing (an app with migrations would run alembic instead)."""
    metadata.create_all(db.engine)
