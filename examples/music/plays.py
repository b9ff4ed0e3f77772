"""Writing and reading listening events: bulk save, a bulk query, and the cached per-user summary."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, func, select

from buttress.db import BulkResult, Database
from examples.music.tables import Play

__all__ = ["generate_plays", "save_plays", "summary"]

_START = datetime(2026, 1, 1, tzinfo=UTC)


def generate_plays(n: int, *, seed: int = 0, users: int = 20) -> Iterator[dict[str, Any]]:
    """``n`` made-up plays, the same for a given seed, produced lazily (a million costs no memory)."""
    rng = random.Random(seed)
    for _ in range(n):
        track = rng.randrange(200)
        yield {
            "user_id": f"user-{rng.randrange(users)}",
            "track_id": f"track-{track}",
            "artist_id": f"artist-{track % 30}",
            "played_at": _START + timedelta(seconds=rng.randrange(86_400 * 30)),
            "ms_played": rng.randrange(10_000, 300_000),
        }


def save_plays(db: Database, rows: Iterator[dict[str, Any]], *, chunk_size: int = 50_000) -> BulkResult:
    """Bulk save: COPY on PostgreSQL, executemany on SQLite, one transaction per chunk."""
    return db.bulk_insert(Play, rows, chunk_size=chunk_size)


def summary(db: Database, user_id: str, *, top: int = 5) -> list[dict[str, Any]]:
    """The user's top tracks (plays, minutes), from the query-result cache until ``music_plays`` changes."""
    count = func.count().label("plays")
    query = (
        select(Play.track_id, Play.artist_id, count, func.sum(Play.ms_played).label("ms"))
        .where(Play.user_id == user_id)
        .group_by(Play.track_id, Play.artist_id)
        .order_by(count.desc(), Play.track_id)
        .limit(top)
    )
    # cast: buttress types the statement as Select[Any], one column on SQLAlchemy 2.1 (reported upstream)
    return db.cached(cast("Select[Any]", query), ttl=600).mappings()
