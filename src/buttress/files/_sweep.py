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
from functools import partial
from typing import TYPE_CHECKING

import psutil
from sqlalchemy import text

from buttress.db import Plan, Step
from buttress.files._archive import ARCHIVE_PREFIX
from buttress.files._blobs import BlobStore
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
    """Whether a row names ``key``: as a stored file's bytes, or as an archived file's archive copy."""
    rows = yield Step(
        text("SELECT 1 FROM buttress_files WHERE (key = :key AND state = 'stored') OR archive_key = :key"),
        {"key": key},
        rows=True,
    )
    return bool(rows)


def _home(store: FileStore, key: str) -> BlobStore:
    """The blob store a reservation's key and temp data live in (archive copies: the archive's)."""
    return store.archive_blobs if key.startswith(ARCHIVE_PREFIX) else store.blobs


def _unrecorded_object(store: FileStore, key: str | None) -> bool:
    """Whether ``key`` holds bytes that no row names (what a real pass would delete as an orphan)."""
    if key is None or _home(store, key).size(key) is None:
        return False
    return not store.runner.run(lambda: _recorded(key), write=False)


def sweep(store: FileStore, host: str, *, dry_run: bool = False) -> SweepReport:
    """One pass over the reservations and the blob store's leftovers (see the module docstring).

    ``dry_run``: change nothing and report what the pass would reclaim (a save that settles or a sweeper
    that wins meanwhile makes the real pass reclaim less).
    """
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
        if dry_run:
            released += 1
            freed += held.bytes
            if held.temp:
                removed += 1
                live.add(held.temp)  # the real pass removes it here, so the loop below never sees it
            orphans += int(bool(held.key) and _unrecorded_object(store, held.key))
            continue
        release = partial(release_plan, held.id, held.owner, postgres=store.postgres)
        if not store.runner.run(release):
            continue  # another sweeper, or the save itself, got there first
        released += 1
        freed += held.bytes
        home = _home(store, held.key or "")
        if held.temp:
            home.remove_leftover(held.temp)
            removed += 1
        if held.key and not store.runner.run(partial(_recorded, held.key), write=False):
            orphans += int(home.delete(held.key))
    homes = [store.blobs] if store.archive_blobs is store.blobs else [store.blobs, store.archive_blobs]
    for home in homes:
        for leftover in home.leftovers():
            if leftover.temp not in live and leftover.started_at <= now - ttl:
                if not dry_run:
                    home.remove_leftover(leftover.temp)
                removed += 1
    return SweepReport(released, removed, orphans, freed)
