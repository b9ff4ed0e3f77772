"""WAL positions for read-your-writes: the SQL that reads them, consistency scopes, and keys shared by cache.

A position is a byte offset into the primary's WAL (an LSN, ``'0/3000148'`` in PostgreSQL's text form),
kept here as an ``int``. After a transaction that wrote commits, the primary's ``pg_current_wal_insert_lsn()``
is at or past the end of its commit record: the record was inserted before ``COMMIT`` returned (and
``pg_current_wal_lsn()``, the *write* position, can trail it under ``synchronous_commit = off``). A standby
whose ``pg_last_wal_replay_lsn()`` (the end of the last record it replayed) is at or past that number has
replayed the commit, so its snapshots show the write. No clock is involved.

Two places remember the position a later read must see:

- a :func:`consistent` scope, a ContextVar (a request, a job, a block): writes in it raise its position per
  database, reads in it wait for it (child tasks share the scope object, so their writes count too);
- a caller-supplied key (``"user:42"``) stored through :mod:`buttress.cache`: with a Redis cache every
  process honours it. The stored value only grows (see :class:`KeyPositions`) and expires after a TTL
  longer than any lag a serving replica may have.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from sqlalchemy import text

from buttress.container import current_scope as current_unit
from buttress.errors import ValidationError

if TYPE_CHECKING:
    from buttress.cache import Cache

__all__ = [
    "INSERT_LSN",
    "REPLAY_LSN",
    "UNKNOWN_WRITE",
    "WROTE",
    "Consistency",
    "KeyPositions",
    "consistent",
    "current_scope",
    "format_lsn",
]

INSERT_LSN: Final = text(
    "SELECT CASE WHEN p % s = 40 THEN p - 40 WHEN p % b = 24 THEN p - 24 ELSE p END FROM ("
    "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS p,"
    " current_setting('wal_block_size')::bigint AS b,"
    " pg_size_bytes(current_setting('wal_segment_size')) AS s) AS w"
)
"""The primary's insert position as an end-of-record position: where the next record would start sits
past a page header when the last record ended on a page boundary, and a standby's replay position (the end
of its last record) stops at the boundary; the page header (24 bytes, 40 at a segment's start) is
taken off, as PostgreSQL's own ``XLogBytePosToEndRecPtr`` does."""
REPLAY_LSN: Final = text("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint")
WROTE: Final = text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
"""True when the open transaction was given a transaction id: it wrote (a read-only one never gets one)."""

UNKNOWN_WRITE: Final = 1 << 62
"""The position recorded when a write committed but its position could not be read: past every replica, so
reads of its scope or key go to the primary (until the key's TTL; a scope ends with its block)."""

_SCOPE: ContextVar[Consistency | None] = ContextVar("buttress_db_consistency", default=None)


def format_lsn(lsn: int | None) -> str | None:
    """``lsn`` in PostgreSQL's text form (``'0/3000148'``)."""
    return None if lsn is None else f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass(eq=False)
class Consistency:
    """One consistency scope: per database (by its router's id), the WAL position its reads must see."""

    positions: dict[int, int] = field(default_factory=dict)

    def raise_to(self, database: int, lsn: int) -> None:
        if lsn > self.positions.get(database, 0):
            self.positions[database] = lsn

    def need(self, database: int) -> int:
        return self.positions.get(database, 0)


def current_scope() -> Consistency | None:
    """The innermost open :func:`consistent` scope; else the current container scope's; else None.

    A container scope (a request under the ops middleware, a job) is a consistency scope of its own,
    with nothing to open: its position lives on the scope object (``Scope.local``).
    """
    scope = _SCOPE.get()
    if scope is not None:
        return scope
    unit = current_unit()
    return None if unit is None else unit.local(Consistency, Consistency)


@contextmanager
def consistent() -> Iterator[Consistency]:
    """A read-your-writes scope: reads in it see every write committed in it, on every database.

    Nested, it is the enclosing scope (a job that opens one inside a request shares the request's), and
    inside a container scope it is that scope's.
    """
    scope = current_scope()
    if scope is not None:
        yield scope
        return
    scope = Consistency()
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def check_key(key: object) -> str:
    """``key`` as given, or a ValidationError naming the fix."""
    if not isinstance(key, str) or not key or any(c.isspace() for c in key):
        raise ValidationError(
            f"key must be a non-empty string without whitespace, got {key!r}; e.g. key='user:42'",
            field="key",
        )
    return key


class KeyPositions:
    """Per key, the highest WAL position written under it, in a :class:`~buttress.cache.Cache`.

    Keeping the maximum across processes without a compare-and-set: read the value, then ``incr`` by the
    difference. Two processes racing on one key may both add theirs, overshooting the larger position:
    reads of that key then go to the primary a little longer (until a replica passes the sum or the TTL
    ends), never to a replica that misses a write. If the key expired between the read and the ``incr``,
    the ``incr`` creates it with the difference alone; the result is checked and topped up.
    """

    def __init__(self, cache: Cache, database: str, ttl: float) -> None:
        self.cache = cache.namespaced("db_replicas")
        self.prefix = "lsn:" + hashlib.sha256(database.encode()).hexdigest()[:16] + ":"
        self.ttl = ttl

    def get(self, key: str) -> int:
        value = self.cache.get(self.prefix + key)
        return value if isinstance(value, int) else 0

    async def aget(self, key: str) -> int:
        value = await self.cache.aget(self.prefix + key)
        return value if isinstance(value, int) else 0

    def raise_to(self, key: str, lsn: int) -> None:
        full = self.prefix + key
        current = self.get(key)
        if current >= lsn:
            self.cache.expire(full, self.ttl)
            return
        value = self.cache.incr(full, lsn - current, ttl=self.ttl)
        while value < lsn:  # the key expired in between: incr created it with the difference alone
            value = self.cache.incr(full, lsn - value, ttl=self.ttl)
        if current:
            self.cache.expire(full, self.ttl)

    async def araise_to(self, key: str, lsn: int) -> None:
        full = self.prefix + key
        current = await self.aget(key)
        if current >= lsn:
            await self.cache.aexpire(full, self.ttl)
            return
        value = await self.cache.aincr(full, lsn - current, ttl=self.ttl)
        while value < lsn:
            value = await self.cache.aincr(full, lsn - value, ttl=self.ttl)
        if current:
            await self.cache.aexpire(full, self.ttl)
