"""Reclaiming what crashed saves left: their reservations, temp data and bytes published but unrecorded.

A reservation is abandoned when it expired (no byte for ``files.reservation_ttl`` seconds), or at once
when it belongs to a process on this host that is gone (a SIGKILLed worker's next start frees its space
and temp data without waiting). Releasing it is a transaction that only one sweeper wins, so two
sweepers never double-free; the winner removes the temp data and, when no row names the final key, the
bytes a save published before it could record them. Temp data no reservation names (a crash between
opening the write and reserving) is removed once older than the TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil
from sqlalchemy import text

from buttress.db import Plan, Step
from buttress.files._reservations import Reservation, release_plan, reservations_plan

if TYPE_CHECKING:
    from buttress.files._store import FileStore

__all__ = ["SweepReport", "sweep"]


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What a sweep reclaimed: reservations released, temp data removed, unrecorded objects deleted."""

    reservations: int = 0
    leftovers: int = 0
    orphans: int = 0
    freed_bytes: int = 0


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _recorded(key: str) -> Plan[bool]:
    rows = yield Step(text("SELECT 1 FROM buttress_files WHERE key = :key"), {"key": key}, rows=True)
    return bool(rows)


def sweep(store: FileStore, host: str) -> SweepReport:
    """One pass over the reservations and the blob store's leftovers (see the module docstring)."""
    now = store.clock.time()
    ttl = store.settings.reservation_ttl
    live: set[str] = set()
    released = removed = orphans = freed = 0
    reservations: list[Reservation] = store.runner.run(reservations_plan, write=False)
    for held in reservations:
        abandoned = held.expires_at <= now or (held.host == host and _gone(held.pid))
        if not abandoned:
            if held.temp:
                live.add(held.temp)
            continue
        if not store.runner.run(lambda held=held: release_plan(held.id, held.owner)):  # type: ignore[misc]
            continue  # another sweeper, or the save itself, got there first
        released += 1
        freed += held.bytes
        if held.temp:
            store.blobs.remove_leftover(held.temp)
            removed += 1
        if held.key and not store.runner.run(lambda key=held.key: _recorded(key), write=False):  # type: ignore[misc]
            orphans += int(store.blobs.delete(held.key))
    for leftover in store.blobs.leftovers():
        if leftover.temp not in live and leftover.started_at <= now - ttl:
            store.blobs.remove_leftover(leftover.temp)
            removed += 1
    return SweepReport(released, removed, orphans, freed)
