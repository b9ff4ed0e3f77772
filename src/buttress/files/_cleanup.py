"""A cleanup: the sweep, then every retention rule in order, each file acted on at most once per run.

A dry run reads the same candidates in the same order and lists what a real run would do, changing
nothing: the sweep reports what it would reclaim, and the pressure figures fall by each planned file's
size exactly as they do in a real run. A file touched by one rule is left alone by the later rules of the
same run (a file archived now is purged by a later run, not this one), which is what keeps the two lists
equal.

Deletes go ``BATCH`` rows per transaction (:func:`delete_batch_plan`), the bytes removed after the rows;
archives copy and check each file's bytes, then move the batch's rows in one transaction (a row only
if it is still stored) and drop the originals of the rows moved. When another cleanup, a user's delete
or a read gets to a file first, the file is counted as ``raced``: someone else did it, not an error.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from buttress.errors import ButtressError, ConflictError, NotFoundError, ValidationError
from buttress.files._archive import archive_key, copy_blob
from buttress.files._catalog import get_plan
from buttress.files._info import StoredFile
from buttress.files._reservations import guard_plan, unguard_plan
from buttress.files._retention import (
    BATCH,
    Retention,
    archive_batch_plan,
    candidates_plan,
    check_rules,
    cursor_of,
    delete_batch_plan,
)
from buttress.files._stats import stats_plan
from buttress.files._sweep import SweepReport, sweep

if TYPE_CHECKING:
    from buttress.files._store import FileStore

__all__ = ["CleanupAction", "CleanupReport", "cleanup"]

_log = logging.getLogger("buttress.files")
Outcome = Literal["planned", "done", "raced", "error"]
_SHOWN: Final = 1000


@dataclass(frozen=True, slots=True)
class CleanupAction:
    """One file a rule chose: what was (or, in a dry run, would be) done to it, and how it went."""

    file_id: str
    name: str
    owner: str | None
    size: int
    action: Literal["archive", "delete", "purge"]
    rule: int
    reason: str
    outcome: Outcome = "planned"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "name": self.name,
            "owner": self.owner,
            "size": self.size,
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "outcome": self.outcome,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """What a cleanup did (or would do): the sweep, every action, and the counts.

    ``bytes_freed``: quota bytes given back by deletes and purges; ``bytes_archived``: bytes moved off the
    main store. ``raced``: files someone else changed first. In a dry run the counts are what a real run
    would reach if nobody else changed anything meanwhile.
    """

    dry_run: bool
    sweep: SweepReport
    actions: tuple[CleanupAction, ...] = ()
    archived: int = 0
    deleted: int = 0
    purged: int = 0
    raced: int = 0
    errors: int = 0
    bytes_freed: int = 0
    bytes_archived: int = 0
    seconds: float = 0.0

    def plan(self) -> list[tuple[str, str, int]]:
        """``(file_id, action, rule)`` of every action, in order (a dry run's equals the real run's)."""
        return [(a.file_id, a.action, a.rule) for a in self.actions]

    def summary(self) -> dict[str, Any]:
        """The counts and the sweep, without the actions (what the scheduled job returns)."""
        swept = self.sweep
        return {
            "dry_run": self.dry_run,
            "archived": self.archived,
            "deleted": self.deleted,
            "purged": self.purged,
            "raced": self.raced,
            "errors": self.errors,
            "bytes_freed": self.bytes_freed,
            "bytes_archived": self.bytes_archived,
            "seconds": round(self.seconds, 6),
            "sweep": {
                "reservations": swept.reservations,
                "leftovers": swept.leftovers,
                "orphans": swept.orphans,
                "freed_bytes": swept.freed_bytes,
            },
        }

    def to_dict(self, *, max_actions: int | None = None) -> dict[str, Any]:
        """A JSON-ready dict: :meth:`summary` and the actions (the first ``max_actions`` of them)."""
        shown = self.actions if max_actions is None else self.actions[:max_actions]
        return {
            **self.summary(),
            "actions": [action.to_dict() for action in shown],
            "actions_total": len(self.actions),
        }


@dataclass
class _Run:
    """One cleanup's state: the clock reading, the files already chosen, the running pressure figures."""

    store: FileStore
    now: float
    dry_run: bool
    limit: int | None
    stored_bytes: int = 0
    used_bytes: int = 0
    quota: int | None = None
    chosen: set[str] = field(default_factory=set)
    actions: list[CleanupAction] = field(default_factory=list)

    def room(self) -> int:
        return BATCH if self.limit is None else min(BATCH, self.limit - len(self.actions))

    def measure(self, rule: Retention) -> int:
        """What ``rule``'s marks are compared with: stored bytes for an archive, the quota counter else."""
        return self.stored_bytes if rule.action == "archive" else self.used_bytes

    def mark(self, value: float) -> float:
        return value * self.quota if value <= 1 and self.quota is not None else value

    def apply(self, index: int, rule: Retention) -> None:
        """Choose ``rule``'s files batch by batch and act on each batch (or list it, in a dry run)."""
        over = rule.high_water is not None and self.measure(rule) > self.mark(rule.high_water)
        if rule.pressure and not over:
            return
        after: tuple[float, str] | None = None
        while self.room() > 0:
            batch = self.store.runner.run(
                lambda after=after: candidates_plan(rule, self.now, after),  # type: ignore[misc]
                write=False,
            )
            if not batch:
                return
            after = cursor_of(rule, batch[-1])
            picked, enough = self._pick(rule, batch)
            self._act(index, rule, picked)
            if enough or len(batch) < BATCH:
                return

    def _pick(self, rule: Retention, batch: Sequence[StoredFile]) -> tuple[list[StoredFile], bool]:
        picked: list[StoredFile] = []
        room = self.room()
        low = None if rule.low_water is None else self.mark(rule.low_water)
        for found in batch:
            if low is not None and self.measure(rule) <= low:
                return picked, True
            if len(picked) >= room:
                return picked, True
            if found.id in self.chosen:
                continue
            self.chosen.add(found.id)
            picked.append(found)
            if rule.kind != "purge":
                self.stored_bytes -= found.size
            if rule.action == "delete":
                self.used_bytes -= found.size
        return picked, False

    def _act(self, index: int, rule: Retention, picked: Sequence[StoredFile]) -> None:
        reason = rule.describe()
        if self.dry_run or not picked:
            self.actions.extend(_action(found, index, rule, reason) for found in picked)
        elif rule.action == "delete":
            self._delete(index, rule, reason, picked)
        else:
            self._archive(index, rule, reason, picked)

    def _delete(self, index: int, rule: Retention, reason: str, picked: Sequence[StoredFile]) -> None:
        store = self.store
        accessed_before = None if rule.idle is None else self.now - rule.idle
        ids = [found.id for found in picked]
        gone = store.runner.run(
            lambda: delete_batch_plan(ids, rule.state, accessed_before, postgres=store.postgres)
        )
        by_id = {found.id: found for found in gone}
        for found in picked:
            removed = by_id.get(found.id)
            if removed is None:
                self.actions.append(_action(found, index, rule, reason, outcome="raced"))
                continue
            error = None
            try:
                if removed.state == "archived" and removed.archive_key is not None:
                    store.archive_blobs.delete(removed.archive_key)
                else:
                    store.blobs.delete(removed.key)
            except (ButtressError, OSError) as exc:  # the row is gone: its bytes stay behind, say so
                error = f"the row was deleted but its bytes could not be: {exc}"
                _log.warning("files cleanup: %s: %s", removed.id, error)
            outcome: Outcome = "error" if error else "done"
            self.actions.append(_action(removed, index, rule, reason, outcome=outcome, error=error))
            store.telemetry.announce("files.deleted", removed)

    def _archive(self, index: int, rule: Retention, reason: str, picked: Sequence[StoredFile]) -> None:
        """Archive a batch as ``FileStore.archive`` does (copy, check, move the row, drop the original),
        with one transaction for the rows, knowing which files this run was the one to archive."""
        store = self.store
        packed = store.settings.archive_compress
        copied: list[tuple[str, str]] = []
        outcomes: dict[str, tuple[Outcome, str | None]] = {}
        planned = {found.id: archive_key(found.id, packed) for found in picked}
        guards = [store._copy_guard(target) for target in planned.values()]
        store.runner.run(lambda: guard_plan(guards))  # one transaction guards the batch's copies
        try:
            for found in picked:
                failed = self._copy(found, planned[found.id], packed)
                if failed is None:
                    copied.append((found.id, planned[found.id]))
                else:
                    outcomes[found.id] = failed
            won = store.runner.run(lambda: archive_batch_plan(copied, packed, self.now)) if copied else set()
        finally:
            with contextlib.suppress(ButtressError):  # guards left behind expire and are swept
                store.runner.run(lambda: unguard_plan([guard.id for guard in guards]))
        targets = dict(copied)
        for found in picked:
            if found.id in targets:
                if found.id in won:
                    store.blobs.delete(found.key)
                    store.telemetry.announce("files.archived", found)
                    outcomes[found.id] = ("done", None)
                else:
                    store.archive_blobs.delete(targets[found.id])  # deleted or archived meanwhile
                    outcomes[found.id] = ("raced", None)
            outcome, error = outcomes[found.id]
            self.actions.append(_action(found, index, rule, reason, outcome=outcome, error=error))

    def _copy(self, found: StoredFile, target: str, packed: bool) -> tuple[Outcome, str | None] | None:
        """Copy one file to the archive and check it; None when the copy is good, else the outcome."""
        store = self.store
        try:
            digest, _ = copy_blob(
                store.blobs,
                found.key,
                store.archive_blobs.writer(target),
                transform="gzip" if packed else None,
            )
        except (ConflictError, NotFoundError) as exc:
            # The copy already exists (another cleanup is archiving it) or the bytes are gone (it was
            # deleted or archived meanwhile): either way this run did not lose anything.
            if isinstance(exc, NotFoundError) and self._still(found):
                return "error", f"the file's bytes are missing from the store: {exc}"
            return "raced", None
        except (ButtressError, OSError) as exc:
            return "error", str(exc)
        if digest != found.sha256:
            store.archive_blobs.delete(target)
            return "error", f"file {found.id} no longer matches its sha256; it was not archived"
        return None

    def _still(self, found: StoredFile) -> bool:
        """Whether the file is still there in the state it was chosen in."""
        try:
            now = self.store.runner.run(lambda: get_plan(found.id), write=False)
        except NotFoundError:
            return False
        return now.state == found.state


def _action(
    found: StoredFile,
    index: int,
    rule: Retention,
    reason: str,
    *,
    outcome: Outcome = "planned",
    error: str | None = None,
) -> CleanupAction:
    return CleanupAction(
        found.id, found.name, found.owner, found.size, rule.kind, index, reason, outcome, error
    )


def _check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(
            f"limit must be a positive number of files or None, got {limit!r}", field="limit"
        )
    return limit


def cleanup(
    store: FileStore, rules: Sequence[Retention], *, dry_run: bool = False, limit: int | None = None
) -> CleanupReport:
    """Sweep, then apply ``rules`` in order (at most ``limit`` files in all); see the module docstring."""
    quota = store.limits.total
    checked = check_rules(rules, quota=quota)
    most = _check_limit(limit)
    started = time.perf_counter()
    store.ensure_schema()
    swept = sweep(store, socket.gethostname(), dry_run=True) if dry_run else store.sweep()
    run = _Run(store, store.clock.time(), bool(dry_run), most)
    if any(rule.pressure for rule in checked):
        totals = store.runner.run(lambda: stats_plan(store.limits), write=False)
        whole = totals.usage[0]
        run.stored_bytes, run.used_bytes, run.quota = totals.stored_bytes, whole.used, whole.quota
    for index, rule in enumerate(checked):
        run.apply(index, rule)
    counts = {"archive": 0, "delete": 0, "purge": 0}
    freed = archived_bytes = raced = errors = 0
    for action in run.actions:
        if action.outcome in ("done", "planned"):
            counts[action.action] += 1
            if action.action == "archive":
                archived_bytes += action.size
            else:
                freed += action.size
        raced += action.outcome == "raced"
        errors += action.outcome == "error"
    if not dry_run:
        store.telemetry.cleaned("archived", counts["archive"])
        store.telemetry.cleaned("deleted", counts["delete"])
        store.telemetry.cleaned("purged", counts["purge"])
    return CleanupReport(
        dry_run=bool(dry_run),
        sweep=swept,
        actions=tuple(run.actions),
        archived=counts["archive"],
        deleted=counts["delete"],
        purged=counts["purge"],
        raced=raced,
        errors=errors,
        bytes_freed=freed,
        bytes_archived=archived_bytes,
        seconds=time.perf_counter() - started,
    )
