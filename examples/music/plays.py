"""Writing and reading listening events: bulk save, a bulk query, and the cached per-user summary."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from buttress.db import BulkResult, Database
from examples.music.tables import plays

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
    return db.bulk_insert(plays, rows, chunk_size=chunk_size)


def summary(db: Database, user_id: str, *, top: int = 5) -> list[dict[str, Any]]:
    """The user's top tracks (plays, minutes), from the query-result cache until ``music_plays`` changes."""
    count = func.count().label("plays")
    query = (
        select(plays.c.track_id, plays.c.artist_id, count, func.sum(plays.c.ms_played).label("ms"))
        .where(plays.c.user_id == user_id)
        .group_by(plays.c.track_id, plays.c.artist_id)
        .order_by(count.desc(), plays.c.track_id)
        .limit(top)
    )
    return db.cached(query, ttl=600).mappings()
