"""``@schedule``: run a job type at cron times, at intervals or at daily wall-clock times.

The decorator describes code, as ``@job`` does: it registers a :class:`Schedule` by name in the jobs
registry, and every scheduler reconciles the registry with the schedules table when it starts. A
schedule's identity is its name, not its expression: change the expression and redeploy, and the stored
row is updated (its anchor moves to the reconcile time, so the old expression never fires again).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, ParamSpec, TypeVar

from buttress.errors import ValidationError
from buttress.jobs._payload import dump_args
from buttress.jobs._registry import REGISTRY, Registry, check_name
from buttress.jobs._schedule_spec import CatchUp, ScheduleSpec
from buttress.jobs._task import Task

__all__ = ["OVERLAPS", "Overlap", "Schedule", "schedule"]

P = ParamSpec("P")
R = TypeVar("R")

Overlap = Literal["skip", "allow", "cancel"]
OVERLAPS: tuple[Overlap, ...] = ("skip", "allow", "cancel")
_CATCH_UPS = ("skip", "once", "all")


@dataclass(frozen=True, slots=True)
class Schedule:
    """One named schedule: when (``spec``), what (``task`` with the stored ``args``), and the policies.

    ``catch_up`` decides what a scheduler creates for fires it missed (see
    :meth:`ScheduleSpec.due_fires`); ``overlap`` what a fire does while an earlier run of this schedule
    is still active: ``skip`` records the tick as skipped, ``allow`` runs both, ``cancel`` cancels the
    earlier run and starts the new one.
    """

    name: str
    spec: ScheduleSpec
    task: str
    queue: str
    priority: int
    args: str
    catch_up: CatchUp = "once"
    catch_up_window: float = 3600.0
    misfire_grace: float = 60.0
    overlap: Overlap = "skip"


def _seconds(value: object, field: str, example: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValidationError(
            f"{field} must be a number of seconds >= 0, got {value!r}; e.g. {example}", field=field
        )
    return float(value)


def _choice(value: object, field: str, choices: Sequence[str]) -> Any:
    if value not in choices:
        options = ", ".join(repr(choice) for choice in choices)
        raise ValidationError(f"{field} must be one of {options}, got {value!r}", field=field)
    return value


def add_schedule(registry: Registry, entry: Schedule) -> None:
    """Register ``entry``; a different schedule under a name already taken is an error."""
    known = registry.schedules.get(entry.name)
    if known is not None and known != entry:
        raise ValidationError(
            f"two schedules are named {entry.name!r} ({known.spec.text} and {entry.spec.text}); "
            "give one of them @schedule(name=...)",
            field="name",
        )
    registry.schedules[entry.name] = entry


def schedule(
    *,
    cron: str | None = None,
    every: float | timedelta | None = None,
    at: Iterable[str] | str | None = None,
    tz: str = "UTC",
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    catch_up: CatchUp = "once",
    catch_up_window: float | timedelta = 3600.0,
    misfire_grace: float | timedelta = 60.0,
    overlap: Overlap = "skip",
    queue: str | None = None,
    priority: int | None = None,
    registry: Registry | None = None,
) -> Callable[[Callable[P, R] | Task[P, R]], Task[P, R]]:
    """Run a job on a schedule: exactly one of ``cron=`` (5 fields, or 6 with seconds first), ``every=``
    (seconds or a timedelta) or ``at=`` (daily times ``"HH:MM"``), in time zone ``tz``.

    On a ``@job`` it schedules that job type; on a plain function it makes one (default options). Each
    fire defers one call with ``args``/``kwargs`` (checked as JSON now), on ``queue`` and at ``priority``
    (default: the job's). ``name`` (default: the job type's name) identifies the schedule: give each of
    several schedules of one job its own. ``catch_up`` (``"skip"``, ``"once"``, ``"all"``) with
    ``catch_up_window`` and ``misfire_grace`` decide what runs after downtime; ``overlap`` (``"skip"``,
    ``"allow"``, ``"cancel"``) what a fire does while the previous run is still active. Returns the job.
    """
    spec = ScheduleSpec(cron=cron, every=every, at=at, tz=tz)
    policy: CatchUp = _choice(catch_up, "catch_up", _CATCH_UPS)
    overlapping: Overlap = _choice(overlap, "overlap", OVERLAPS)
    window = _seconds(catch_up_window, "catch_up_window", "3600")
    grace = _seconds(misfire_grace, "misfire_grace", "60")
    stored_args = dump_args(list(args), dict(kwargs or {}))
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ValidationError(
            f"priority must be an int (higher runs first), got {priority!r}", field="priority"
        )
    book = registry or REGISTRY

    def decorate(target: Callable[P, R] | Task[P, R]) -> Task[P, R]:
        task = target if isinstance(target, Task) else Task(target, registry=book)
        entry = Schedule(
            name=check_name(name or task.name, "name"),
            spec=spec,
            task=task.name,
            queue=check_name(queue, "queue") if queue is not None else task.queue,
            priority=task.priority if priority is None else priority,
            args=stored_args,
            catch_up=policy,
            catch_up_window=window,
            misfire_grace=grace,
            overlap=overlapping,
        )
        add_schedule(book, entry)
        return task

    return decorate
