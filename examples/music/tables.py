"""The one table: a listening event per row (who played which track, when, for how long)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from buttress.db import Database

__all__ = ["Base", "Play", "create_schema"]


class Base(DeclarativeBase):
    pass


class Play(Base):
    """One listening event; ``id`` is a BIGINT on PostgreSQL and SQLite's rowid alias there."""

    __tablename__ = "music_plays"
    __table_args__ = (Index("music_plays_user", "user_id", "track_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    user_id: Mapped[str]
    track_id: Mapped[str]
    artist_id: Mapped[str]
    played_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ms_played: Mapped[int]


def create_schema(db: Database) -> None:
    """Create the table if missing (an app with migrations would run alembic instead)."""
    db.check()  # a database that cannot be opened raises BackendUnavailable at once, not a driver error
    db.transaction(lambda session: Base.metadata.create_all(session.connection()))
