"""The tables a transaction wrote, noted on its connection so they can be announced after it commits.

Readers of "what changed" (the query cache's per-table version counters, the replica router's
read-your-writes) must hear of a write only once it is committed, never before. Everything that writes
around SQLAlchemy's compiled statements (the bulk writers' COPY, raw driver calls) notes its tables here
with :func:`note_written`; the connection's info dict carries them until the transaction ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

__all__ = ["WRITTEN", "note_written"]

WRITTEN: Final = "buttress.written"
"""The key of ``connection.info`` holding the set of table names the open transaction wrote."""


def note_written(connection: Any, tables: Iterable[str]) -> None:
    """Record that the open transaction on ``connection`` (a SQLAlchemy Connection) wrote ``tables``."""
    written: set[str] = connection.info.setdefault(WRITTEN, set())
    written.update(tables)
