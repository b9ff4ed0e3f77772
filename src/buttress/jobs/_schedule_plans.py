"""The schedules' statements, as plans (see :mod:`buttress.jobs._plans`): reconcile, load, fire, list.

Exactly once: a fire inserts its tick ``(schedule, fire_at)`` with ``ON CONFLICT DO NOTHING`` and only
the transaction whose insert took the row creates the job, in that same transaction; a second scheduler
racing for the same fire inserts nothing (on PostgreSQL it waits on the unique key until the first
commits; on SQLite writers queue at ``BEGIN IMMEDIATE``). Each fire transaction first re-checks that the
schedule row still has the digest the fires were computed from, so a fire of an expression replaced by a
reconcile is never created, whatever an older process still has in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, text

from buttress.errors import QueueFull
from buttress.jobs._plans import Dialect, NewJob, Plan, Step, cancel_plan, defer_plan
from buttress.jobs._schedule import Schedule
from buttress.jobs._schedule_spec import ScheduleSpec

__all__ = [
    "Fired",
    "Reconciled",
    "ScheduleRow",
    "fire_plan",
    "load_plan",
    "prune_ticks_plan",
    "reconcile_plan",
    "set_next_plan",
    "ticks_plan",
]


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A row of ``buttress_job_schedules``: what the scheduler fires (the database is the truth)."""

    name: str
    spec: str
    digest: str
    task: str
    queue: str
    priority: int
    args: str
    catch_up: str
    overlap: str
    anchor: float
    last_fire_at: float | None
    next_fire_at: float | None
    active: bool
    updated_at: float

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ScheduleRow:
        return cls(
            name=row[0], spec=row[1], digest=row[2], task=row[3], queue=row[4], priority=int(row[5]),
            args=row[6], catch_up=row[7], overlap=row[8], anchor=float(row[9]),
            last_fire_at=None if row[10] is None else float(row[10]),
            next_fire_at=None if row[11] is None else float(row[11]),
            active=bool(row[12]), updated_at=float(row[13]),
        )  # fmt: skip


@dataclass(slots=True)
class Reconciled:
    """What a reconcile changed, by schedule name."""

    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Fired:
    """What one fire transaction did: jobs created (fire_at, job id), ticks skipped or refused, and
    fires another scheduler had already taken; ``stale``: the row moved on since it was read (another
    scheduler fired past these fires, or a reconcile replaced the expression), so nothing was written."""

    created: list[tuple[float, int]] = field(default_factory=list)
    skipped: list[float] = field(default_factory=list)
    queue_full: list[float] = field(default_factory=list)
    taken: list[float] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    stale: bool = False


_INSERT = text(
    "INSERT INTO buttress_job_schedules (name, spec, digest, task, queue, priority, args, catch_up, "
    "overlap, anchor, last_fire_at, next_fire_at, active, updated_at) VALUES (:name, :spec, :digest, "
    ":task, :queue, :priority, :args, :catch_up, :overlap, :now, NULL, :next, 1, :now) "
    "ON CONFLICT (name) DO NOTHING RETURNING name"
)
_CHANGE = text(
    "UPDATE buttress_job_schedules SET spec = :spec, digest = :digest, task = :task, queue = :queue, "
    "priority = :priority, args = :args, catch_up = :catch_up, overlap = :overlap, anchor = :now, "
    "last_fire_at = NULL, next_fire_at = :next, active = 1, updated_at = :now "
    "WHERE name = :name AND digest <> :digest"
)
_REACTIVATE = text(
    "UPDATE buttress_job_schedules SET task = :task, queue = :queue, priority = :priority, args = :args, "
    "catch_up = :catch_up, overlap = :overlap, anchor = :now, last_fire_at = NULL, next_fire_at = :next, "
    "active = 1, updated_at = :now WHERE name = :name AND digest = :digest AND active = 0"
)
_UPDATE = text(
    "UPDATE buttress_job_schedules SET task = :task, queue = :queue, priority = :priority, args = :args, "
    "catch_up = :catch_up, overlap = :overlap, updated_at = :now WHERE name = :name AND digest = :digest "
    "AND active = 1 AND (task <> :task OR queue <> :queue OR priority <> :priority OR args <> :args "
    "OR catch_up <> :catch_up OR overlap <> :overlap)"
)
_DEACTIVATE = text(
    "UPDATE buttress_job_schedules SET active = 0, next_fire_at = NULL, updated_at = :now "
    "WHERE active = 1 AND name NOT IN :names RETURNING name"
).bindparams(bindparam("names", expanding=True))


def reconcile_plan(
    schedules: Sequence[Schedule], now: float, *, deactivate_missing: bool
) -> Plan[Reconciled]:
    """Make the table match the code: insert new schedules, move a changed one's anchor to ``now`` (its old
    expression never fires again), reactivate one defined again (from ``now``: no replay of the time it
    was off), update the job, queue, arguments and policies of the others; with ``deactivate_missing``
    mark active rows no schedule in ``schedules`` names inactive."""
    done = Reconciled()
    for entry in sorted(schedules, key=lambda s: s.name):
        params = {
            "name": entry.name, "spec": entry.spec.text, "digest": entry.spec.digest, "task": entry.task,
            "queue": entry.queue, "priority": entry.priority, "args": entry.args, "catch_up": entry.catch_up,
            "overlap": entry.overlap, "now": now, "next": entry.spec.next_fire(now, now),
        }  # fmt: skip
        if (yield Step(_INSERT, params, rows=True)):
            done.created.append(entry.name)
        elif (yield Step(_CHANGE, params)):
            done.changed.append(entry.name)
        elif (yield Step(_REACTIVATE, params)):
            done.reactivated.append(entry.name)
        elif (yield Step(_UPDATE, params)):
            done.updated.append(entry.name)
    if deactivate_missing:
        names = [entry.name for entry in schedules]
        rows = yield Step(_DEACTIVATE, {"names": names, "now": now}, rows=True)
        done.deactivated = sorted(row[0] for row in rows)
    return done


_LOAD_ALL = text(
    "SELECT name, spec, digest, task, queue, priority, args, catch_up, overlap, anchor, last_fire_at, "
    "next_fire_at, active, updated_at FROM buttress_job_schedules ORDER BY name"
)
_LOAD_ACTIVE = text(
    "SELECT name, spec, digest, task, queue, priority, args, catch_up, overlap, anchor, last_fire_at, "
    "next_fire_at, active, updated_at FROM buttress_job_schedules WHERE active = 1 ORDER BY name"
)


def load_plan(*, active_only: bool = True) -> Plan[list[ScheduleRow]]:
    """The schedules to fire (or, for listings, every schedule)."""
    rows = yield Step(_LOAD_ACTIVE if active_only else _LOAD_ALL, rows=True)
    return [ScheduleRow.from_row(row) for row in rows]


_ADVANCE = text(
    "UPDATE buttress_job_schedules SET last_fire_at = CASE WHEN last_fire_at IS NULL OR last_fire_at < :last "
    "THEN :last ELSE last_fire_at END, next_fire_at = :next, updated_at = :now "
    "WHERE name = :name AND digest = :digest AND active = 1 "
    "AND (last_fire_at IS NULL OR last_fire_at < :first)"
)
_TICK = text(
    "INSERT INTO buttress_job_ticks (schedule, fire_at, job_id, outcome, created_at) "
    "VALUES (:schedule, :fire_at, NULL, 'pending', :now) "
    "ON CONFLICT (schedule, fire_at) DO NOTHING RETURNING fire_at"
)
_TICK_OUTCOME = text(
    "UPDATE buttress_job_ticks SET job_id = :job_id, outcome = :outcome "
    "WHERE schedule = :schedule AND fire_at = :fire_at"
)
_ACTIVE_RUNS = text(
    "SELECT id FROM buttress_jobs WHERE schedule = :schedule "
    "AND status IN ('queued', 'scheduled', 'running', 'retrying') ORDER BY id"
)


def fire_plan(
    row: ScheduleRow,
    fires: Sequence[float],
    next_fire: float,
    now: float,
    *,
    make_job: Callable[[float], NewJob],
    bounds: dict[str, int],
    result_ttl: float,
    dialect: Dialect,
) -> Plan[Fired]:
    """Create the jobs of ``fires`` (ascending) of schedule ``row``, each at most once anywhere.

    The first statement re-checks the row: same digest, still active, and no fire recorded at or after
    ``fires[0]``; otherwise nothing is written (the tick key stays the second line of defence, which is
    what lets old ticks be pruned). Then the overlap policy, per fire, inside the transaction: ``skip``
    records a tick without a job while an earlier run of the schedule is active, ``cancel`` cancels the
    active runs first. A full queue records the tick as ``queue_full`` (the fire is not retried).
    """
    done = Fired()
    guard = {"name": row.name, "digest": row.digest, "now": now}
    guard.update(first=fires[0], last=fires[-1], next=next_fire)
    if not (yield Step(_ADVANCE, guard)):
        done.stale = True
        return done
    for fire in fires:
        key = {"schedule": row.name, "fire_at": fire}
        if not (yield Step(_TICK, {**key, "now": now}, rows=True)):
            done.taken.append(fire)
            continue
        if row.overlap != "allow":
            active = [int(r[0]) for r in (yield Step(_ACTIVE_RUNS, {"schedule": row.name}, rows=True))]
            if active and row.overlap == "skip":
                yield Step(_TICK_OUTCOME, {**key, "job_id": None, "outcome": "skipped"})
                done.skipped.append(fire)
                continue
            for job_id in active:
                yield from cancel_plan(job_id, now, result_ttl, dialect)
                done.cancelled.append(job_id)
        try:
            ids = yield from defer_plan([make_job(fire)], now, bounds, dialect)
        except QueueFull:
            yield Step(_TICK_OUTCOME, {**key, "job_id": None, "outcome": "queue_full"})
            done.queue_full.append(fire)
            continue
        yield Step(_TICK_OUTCOME, {**key, "job_id": ids[0], "outcome": "created"})
        done.created.append((fire, ids[0]))
    return done


_SET_NEXT = text(
    "UPDATE buttress_job_schedules SET next_fire_at = :next "
    "WHERE name = :name AND digest = :digest AND active = 1"
)


def set_next_plan(row: ScheduleRow, next_fire: float) -> Plan[int]:
    """Record when ``row`` fires next (shown by ``buttress schedules``) when no fire was due."""
    return int((yield Step(_SET_NEXT, {"name": row.name, "digest": row.digest, "next": next_fire})))


_PRUNE = text("DELETE FROM buttress_job_ticks WHERE fire_at < :before")


def prune_ticks_plan(before: float) -> Plan[int]:
    """Delete the ticks of fires before ``before``; how many. Safe: a fire is only created after the row's
    ``last_fire_at``, so an old fire is never computed again."""
    return int((yield Step(_PRUNE, {"before": before})))


_TICKS = text(
    "SELECT schedule, fire_at, job_id, outcome, created_at FROM buttress_job_ticks "
    "WHERE schedule = :schedule ORDER BY fire_at DESC LIMIT :limit"
)


def ticks_plan(schedule: str, limit: int = 20) -> Plan[list[tuple[str, float, int | None, str, float]]]:
    """The latest ticks of ``schedule``, newest first: (schedule, fire_at, job_id, outcome, created_at)."""
    rows = yield Step(_TICKS, {"schedule": schedule, "limit": limit}, rows=True)
    return [(r[0], float(r[1]), None if r[2] is None else int(r[2]), r[3], float(r[4])) for r in rows]


def spec_of(row: ScheduleRow, cache: dict[str, ScheduleSpec]) -> ScheduleSpec:
    """The parsed spec of ``row`` (parsed once per text)."""
    spec = cache.get(row.spec)
    if spec is None:
        spec = cache[row.spec] = ScheduleSpec.from_text(row.spec)
    return spec
