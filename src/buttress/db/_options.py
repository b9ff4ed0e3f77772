"""Execution options for statements buttress runs on its own behalf (the job queue, the schedulers)."""

from __future__ import annotations

from typing import Any

from buttress.db._engines import SQLITE_BEGIN
from buttress.db._tracking import INTERNAL_OPTION

__all__ = ["internal_options"]


def internal_options(*, write: bool = False) -> dict[str, Any]:
    """Options that keep a statement out of the query tracker; ``write`` also locks SQLite at BEGIN.

    A SQLite transaction that reads before it writes would otherwise upgrade its lock mid-way and can
    fail with "database is locked" against another writer; ``BEGIN IMMEDIATE`` queues it up front.
    """
    options: dict[str, Any] = {INTERNAL_OPTION: True}
    if write:
        options[SQLITE_BEGIN] = "BEGIN IMMEDIATE"
    return options
