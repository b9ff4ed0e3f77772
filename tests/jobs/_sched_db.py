"""Helpers of the scheduler tests: an upgraded database, and rows read as another process would."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from buttress.db import Database


def upgraded(url: str) -> str:
    """``url`` with buttress's tables created (the schedulers under test do not migrate)."""
    db = Database(url)
    try:
        db.upgrade()
    finally:
        db.close()
    return url


def rows(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read on a connection of its own (what another process would see)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()
