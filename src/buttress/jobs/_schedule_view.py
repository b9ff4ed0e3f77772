"""The stored schedules as plain data, with their next fire times (for ``buttress schedules`` and ``/ops``).

It reads the schedules table, which every scheduler reconciles with its code at start, so it shows what the
schedulers fire whichever process defined it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from buttress.jobs._schedule_plans import ScheduleRow, load_plan, spec_of
from buttress.jobs._schedule_spec import ScheduleSpec

if TYPE_CHECKING:
    from buttress.jobs._jobs import Jobs

__all__ = ["describe_schedules"]


def _next_fires(row: ScheduleRow, spec: ScheduleSpec, now: float, count: int) -> list[float]:
    if not row.active:
        return []
    fires: list[float] = []
    after = max(now, row.last_fire_at or row.anchor, row.anchor)
    for _ in range(count):
        after = spec.next_fire(after, row.anchor)
        if after == float("inf"):
            break
        fires.append(after)
    return fires


def describe_schedules(jobs: Jobs, *, count: int = 3) -> list[dict[str, Any]]:
    """Every stored schedule as a dict: name, spec, task, queue, policies, active, last and next fires."""
    jobs.ensure_schema()
    rows = jobs.store.run(lambda: load_plan(active_only=False), write=False)
    now = jobs.clock.time()
    specs: dict[str, ScheduleSpec] = {}
    out = []
    for row in rows:
        spec = spec_of(row, specs)
        out.append(
            {
                "name": row.name,
                "spec": row.spec,
                "tz": spec.tz,
                "task": row.task,
                "queue": row.queue,
                "catch_up": row.catch_up,
                "overlap": row.overlap,
                "active": row.active,
                "last_fire_at": row.last_fire_at,
                "next_fires": _next_fires(row, spec, now, count),
            }
        )
    return out
