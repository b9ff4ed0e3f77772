"""Quota as reservations, written once as plans: reserve before bytes land, grow, settle or release.

Every quota scope has one counter row in ``buttress_file_usage``: ``*`` for the whole store and
``owner:<name>`` per owner. A save reserves space in the rows of its scopes before its first byte is
stored and grows the reservation as bytes arrive; each step checks ``used + reserved + more <= quota``
for every scope under a lock (PostgreSQL: the scope rows ``FOR UPDATE``; SQLite: ``BEGIN IMMEDIATE``),
so racing saves in any number of processes can never overshoot. Finishing settles the reservation into
``used`` in the same transaction that writes the file's row; any failure releases it. A reservation
names its temp data, final key, host and process: a sweeper releases those that expired, or whose
process on this host is gone, and the caller removes what they left in the blob store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import bindparam, text

from buttress.db import Plan, Step
from buttress.errors import ConflictError, QuotaExceeded
from buttress.files._info import StoredFile

__all__ = [
    "GLOBAL",
    "Limits",
    "NewReservation",
    "Reservation",
    "grow_plan",
    "guard_plan",
    "lock_scopes",
    "release_plan",
    "renew_plan",
    "reservations_plan",
    "reserve_plan",
    "scopes_of",
    "settle_plan",
    "unguard_plan",
]

GLOBAL: Final = "*"


def scopes_of(owner: str | None) -> tuple[str, ...]:
    """The quota scopes a file of ``owner`` counts against."""
    return (GLOBAL,) if owner is None else (GLOBAL, f"owner:{owner}")


@dataclass(frozen=True, slots=True)
class Limits:
    """The quotas from the settings; a scope row's own ``quota`` overrides them."""

    total: int | None
    per_owner: int | None

    def default_for(self, scope: str) -> int | None:
        return self.total if scope == GLOBAL else self.per_owner


@dataclass(frozen=True, slots=True)
class NewReservation:
    """A save about to stream: its id, owner, first bytes to reserve, temp data and final key."""

    id: str
    owner: str | None
    bytes: int
    temp: str | None
    key: str
    host: str
    pid: int
    now: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reservation row, as the sweeper reads it."""

    id: str
    owner: str | None
    bytes: int
    temp: str | None
    key: str | None
    host: str
    pid: int
    expires_at: float


_USAGE_IN = text(
    "SELECT scope, used, reserved, quota FROM buttress_file_usage WHERE scope IN :scopes"
).bindparams(bindparam("scopes", expanding=True))
_USAGE_LOCKED = text(
    "SELECT scope, used, reserved, quota FROM buttress_file_usage WHERE scope IN :scopes ORDER BY scope "
    "FOR UPDATE"
).bindparams(bindparam("scopes", expanding=True))
_ENSURE_SCOPE = text("INSERT INTO buttress_file_usage (scope) VALUES (:scope) ON CONFLICT (scope) DO NOTHING")
_ADD_RESERVED = text(
    "UPDATE buttress_file_usage SET reserved = reserved + :bytes WHERE scope IN :scopes"
).bindparams(bindparam("scopes", expanding=True))
_SETTLE = text(
    "UPDATE buttress_file_usage SET reserved = reserved - :reserved, used = used + :size, files = files + 1 "
    "WHERE scope IN :scopes"
).bindparams(bindparam("scopes", expanding=True))
_RESERVATION = text("SELECT bytes FROM buttress_file_reservations WHERE id = :id")
_DROP_RESERVATION = text("DELETE FROM buttress_file_reservations WHERE id = :id")


def _check_room(
    rows: Sequence[tuple[str, int, int, int | None]], limits: Limits, more: int, owner: str | None
) -> None:
    for scope, used, reserved, override in rows:
        quota = override if override is not None else limits.default_for(scope)
        if quota is not None and used + reserved + more > quota:
            whole = "the store" if scope == GLOBAL else f"owner {owner!r}"
            never = more > quota
            raise QuotaExceeded(
                f"{whole} has {max(0, quota - used - reserved)} of its {quota} bytes free, "
                f"{more} more were asked for"
                + ("; this file can never fit" if never else "; free space by deleting or archiving files"),
                context={
                    "scope": scope,
                    "quota": quota,
                    "used": used,
                    "reserved": reserved,
                    "requested": more,
                },
                status=413 if never else None,
            )


def lock_scopes(scopes: tuple[str, ...], *, postgres: bool) -> Plan[None]:
    """PostgreSQL: lock the counter rows in scope order before changing them (every plan takes them in
    the same order, so two transactions never wait on each other in a circle). SQLite: the write lock."""
    if postgres:
        yield Step(_USAGE_LOCKED, {"scopes": list(scopes)}, rows=True)


def _locked_usage(scopes: tuple[str, ...], postgres: bool) -> Plan[list[tuple[str, int, int, int | None]]]:
    for scope in scopes:
        yield Step(_ENSURE_SCOPE, {"scope": scope})
    rows = yield Step(_USAGE_LOCKED if postgres else _USAGE_IN, {"scopes": list(scopes)}, rows=True)
    return [(row[0], int(row[1]), int(row[2]), None if row[3] is None else int(row[3])) for row in rows]


def reserve_plan(new: NewReservation, limits: Limits, *, postgres: bool) -> Plan[None]:
    """Reserve ``new.bytes`` in every scope of ``new.owner``, or raise ``QuotaExceeded`` writing nothing."""
    scopes = scopes_of(new.owner)
    rows = yield from _locked_usage(scopes, postgres)
    _check_room(rows, limits, new.bytes, new.owner)
    yield Step(_ADD_RESERVED, {"bytes": new.bytes, "scopes": list(scopes)})
    yield Step(
        text(
            "INSERT INTO buttress_file_reservations (id, owner, bytes, temp, key, host, pid, created_at, "
            "expires_at) VALUES (:id, :owner, :bytes, :temp, :key, :host, :pid, :now, :expires_at)"
        ),
        {
            "id": new.id,
            "owner": new.owner,
            "bytes": new.bytes,
            "temp": new.temp,
            "key": new.key,
            "host": new.host,
            "pid": new.pid,
            "now": new.now,
            "expires_at": new.expires_at,
        },
    )


def guard_plan(guards: Sequence[NewReservation]) -> Plan[None]:
    """Record copies in flight (archive, restore): reservations of no bytes, outside every quota, naming
    their temp data (when known) and key, so a sweeper can tell a live copy from a crashed one's leftovers."""
    yield Step(
        text(
            "INSERT INTO buttress_file_reservations (id, owner, bytes, temp, key, host, pid, created_at, "
            "expires_at) VALUES (:id, NULL, 0, :temp, :key, :host, :pid, :now, :expires_at)"
        ),
        [
            {
                "id": new.id,
                "temp": new.temp,
                "key": new.key,
                "host": new.host,
                "pid": new.pid,
                "now": new.now,
                "expires_at": new.expires_at,
            }
            for new in guards
        ],
    )


def unguard_plan(ids: Sequence[str]) -> Plan[None]:
    """Drop the guards of finished copies (they hold no bytes: no counter changes)."""
    yield Step(
        text("DELETE FROM buttress_file_reservations WHERE id IN :ids AND bytes = 0").bindparams(
            bindparam("ids", expanding=True)
        ),
        {"ids": list(ids)},
    )


def _held(reservation_id: str) -> Plan[int]:
    rows = yield Step(_RESERVATION, {"id": reservation_id}, rows=True)
    if not rows:
        raise ConflictError(
            "the save's quota reservation is gone (it expired and was swept); nothing was kept",
            context={"reservation": reservation_id},
        )
    return int(rows[0][0])


def grow_plan(
    reservation_id: str, owner: str | None, more: int, expires_at: float, limits: Limits, *, postgres: bool
) -> Plan[None]:
    """Reserve ``more`` bytes for a save in flight and push its expiry, or raise ``QuotaExceeded``."""
    scopes = scopes_of(owner)
    rows = yield from _locked_usage(scopes, postgres)
    yield from _held(reservation_id)
    _check_room(rows, limits, more, owner)
    yield Step(_ADD_RESERVED, {"bytes": more, "scopes": list(scopes)})
    yield Step(
        text(
            "UPDATE buttress_file_reservations SET bytes = bytes + :more, expires_at = :expires_at "
            "WHERE id = :id"
        ),
        {"more": more, "expires_at": expires_at, "id": reservation_id},
    )


def renew_plan(reservation_id: str, expires_at: float) -> Plan[int]:
    """Push a slow save's expiry; returns 0 when the reservation is gone."""
    count = yield Step(
        text("UPDATE buttress_file_reservations SET expires_at = :expires_at WHERE id = :id"),
        {"expires_at": expires_at, "id": reservation_id},
    )
    return int(count)


def settle_plan(reservation_id: str, stored: StoredFile, *, postgres: bool = False) -> Plan[None]:
    """Turn the reservation into the file's bytes in ``used`` and write the file's row, in one step."""
    scopes = scopes_of(stored.owner)
    yield from lock_scopes(scopes, postgres=postgres)
    held = yield from _held(reservation_id)
    yield Step(_DROP_RESERVATION, {"id": reservation_id})
    yield Step(_SETTLE, {"reserved": held, "size": stored.size, "scopes": list(scopes)})
    yield Step(
        text(
            "INSERT INTO buttress_files (id, key, owner, name, content_type, size, sha256, state, metadata, "
            "created_at, accessed_at) VALUES (:id, :key, :owner, :name, :content_type, :size, :sha256, "
            "'stored', :metadata, :now, :now)"
        ),
        {
            "id": stored.id,
            "key": stored.key,
            "owner": stored.owner,
            "name": stored.name,
            "content_type": stored.content_type,
            "size": stored.size,
            "sha256": stored.sha256,
            "metadata": json.dumps(dict(stored.metadata), sort_keys=True),
            "now": stored.created_at,
        },
    )
    if stored.tags:
        yield Step(
            text("INSERT INTO buttress_file_tags (file_id, tag) VALUES (:file_id, :tag)"),
            [{"file_id": stored.id, "tag": tag} for tag in stored.tags],
        )


def release_plan(reservation_id: str, owner: str | None, *, postgres: bool = False) -> Plan[bool]:
    """Give a reservation's bytes back; False when it was already gone (settled, or swept)."""
    yield from lock_scopes(scopes_of(owner), postgres=postgres)
    rows = yield Step(_RESERVATION, {"id": reservation_id}, rows=True)
    if not rows:
        return False
    yield Step(_DROP_RESERVATION, {"id": reservation_id})
    yield Step(_ADD_RESERVED, {"bytes": -int(rows[0][0]), "scopes": list(scopes_of(owner))})
    return True


def reservations_plan() -> Plan[list[Reservation]]:
    """Every reservation in flight (the sweeper decides which are abandoned)."""
    rows = yield Step(
        text("SELECT id, owner, bytes, temp, key, host, pid, expires_at FROM buttress_file_reservations"),
        rows=True,
    )
    return [
        Reservation(row[0], row[1], int(row[2]), row[3], row[4], row[5], int(row[6]), float(row[7]))
        for row in rows
    ]
