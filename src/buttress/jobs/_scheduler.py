"""``Scheduler``: turns due schedule fires into jobs, exactly once however many schedulers run.

Each scheduler (every worker runs one unless ``--no-scheduler``) reconciles the code's schedules with the
table when it starts, then loops: it reads the active schedules, asks each spec which fires are due under
its catch-up policy, and runs one fire transaction per schedule (:func:`fire_plan`: tick row and job row
together, deduplicated by the tick's unique key). It sleeps until the earliest next fire but never more
than ``max_sleep`` (1 s), so a schedule added elsewhere or a missed wake-up costs at most that. A failed
pass (the database is down) is logged and retried with backoff; the loop never dies of it, and
:meth:`Scheduler.check` tells a health endpoint when it last got through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from buttress.errors import BackendUnavailable, ButtressError, ValidationError
from buttress.health_types import CheckResult, HealthStatus, describe_exception
from buttress.jobs._plans import NewJob
from buttress.jobs._schedule import Schedule
from buttress.jobs._schedule_plans import (
    Fired,
    Reconciled,
    ScheduleRow,
    fire_plan,
    load_plan,
    prune_ticks_plan,
    reconcile_plan,
    set_next_plan,
    spec_of,
)
from buttress.jobs._schedule_spec import CATCH_UP_LIMIT, CatchUp, ScheduleSpec
from buttress.observe.metrics import get_metrics
from buttress.resilience import Backoff

if TYPE_CHECKING:
    from buttress.clock import Clock
    from buttress.jobs._jobs import Jobs
    from buttress.jobs._plans import Plan
    from buttress.jobs._registry import Registry
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["Pass", "Scheduler"]

_log = logging.getLogger("buttress.jobs")
_BACKOFF = Backoff.exponential(0.1, max_delay=5.0, jitter="none")
_PRUNE_EVERY = 60.0
_LAG_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0)
_DEFAULT = Schedule(name="", spec=ScheduleSpec(every=1), task="", queue="", priority=0, args="")


@dataclass(slots=True)
class Pass:
    """What one scheduler pass did, per schedule name, and when the next fire is due (``wake_at``)."""

    fired: dict[str, Fired] = field(default_factory=dict)
    wake_at: float = math.inf

    @property
    def created(self) -> int:
        return sum(len(done.created) for done in self.fired.values())


@dataclass(frozen=True, slots=True)
class _Work:
    row: ScheduleRow
    fires: list[float]
    next_fire: float


class Scheduler:
    """Fires the schedules of ``jobs``' database; ``registry`` holds the code's schedules (``@schedule``).

    ``clock`` (default: the jobs' clock) stamps and times everything, so tests drive it by hand.
    ``reconcile``: sync the code's schedules at start (``deactivate_missing``: mark stored schedules the
    code no longer defines inactive; only when this process defines at least one schedule, so a process
    that imports none never switches off the others'). Ticks older than ``tick_retention`` seconds are
    pruned by fire time (a fire is never computed again once the row's ``last_fire_at`` passed it).
    ``wait_on_clock=False`` waits between passes in real time (as a worker's side loops do), so a test's
    auto-advancing FakeClock shared with a worker is not pushed forward by the scheduler's sleeps.
    """

    def __init__(
        self,
        jobs: Jobs,
        *,
        registry: Registry | None = None,
        clock: Clock | None = None,
        max_sleep: float = 1.0,
        reconcile: bool = True,
        deactivate_missing: bool = True,
        tick_retention: float = 86400.0,
        wait_on_clock: bool = True,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        if isinstance(max_sleep, bool) or not isinstance(max_sleep, int | float) or not 0 < max_sleep <= 60:
            raise ValidationError(
                f"max_sleep must be seconds in (0, 60], got {max_sleep!r}; e.g. 1.0", field="max_sleep"
            )
        self.jobs = jobs
        self.registry = registry or jobs.registry
        self.clock = clock or jobs.clock
        self.max_sleep = float(max_sleep)
        self.reconcile_at_start = reconcile
        self.deactivate_missing = deactivate_missing
        self._specs: dict[str, ScheduleSpec] = {}
        self._reconciled = not reconcile
        self._stop = threading.Event()
        self.tick_retention = float(tick_retention)
        self.wait_on_clock = wait_on_clock
        self._pruned_at: float | None = None  # the first prune comes a minute after the first pass
        registry_ = metrics or get_metrics()
        self._fires = registry_.counter(
            "buttress_jobs_schedule_fires_total",
            "Schedule fires handled by this process, by outcome (created, skipped, queue_full).",
            labels=("schedule", "outcome"),
        )
        self._lag = registry_.histogram(
            "buttress_jobs_schedule_lag_seconds",
            "Seconds from a fire's time to its job's creation.",
            buckets=_LAG_BUCKETS,
        )
        self._failures = registry_.counter(
            "buttress_jobs_scheduler_errors_total", "Scheduler passes that failed."
        )
        # -- health --
        self.schedule_errors: dict[str, str] = {}
        self.passes = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.last_pass_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.started_at: float | None = None
        self._between_passes: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<Scheduler {self.jobs.store!r} passes={self.passes} errors={self.errors}>"

    # -- reconcile ----------------------------------------------------------------------------------

    def _defined(self) -> list[Schedule]:
        return [entry for entry in self.registry.schedules.values() if isinstance(entry, Schedule)]

    def _reconcile_plan(self) -> Plan[Reconciled]:
        defined = self._defined()
        deactivate = self.deactivate_missing and bool(defined)
        return reconcile_plan(defined, self.clock.time(), deactivate_missing=deactivate)

    def reconcile(self) -> Reconciled:
        """Upsert the code's schedules into the table (see :func:`reconcile_plan`)."""
        self.jobs.ensure_schema()
        # nothing defined here: nothing to store, and nothing to switch off (no write at all)
        done = self.jobs.store.run(self._reconcile_plan) if self._defined() else Reconciled()
        self._reconciled = True
        _log_reconciled(done)
        return done

    async def areconcile(self) -> Reconciled:
        """Async :meth:`reconcile`."""
        await self.jobs.aensure_schema()
        done = await self.jobs.store.arun(self._reconcile_plan) if self._defined() else Reconciled()
        self._reconciled = True
        _log_reconciled(done)
        return done

    # -- one pass -----------------------------------------------------------------------------------

    def _plan_work(self, rows: Sequence[ScheduleRow], now: float) -> tuple[list[_Work], float]:
        work, wake_at = [], math.inf
        for row in rows:
            try:
                spec = spec_of(row, self._specs)
            except ValidationError as exc:  # e.g. a time zone this machine's tzdata lacks: the others go on
                self._schedule_failed(row.name, exc)
                continue
            policy = self._policy(row)
            catch_up: CatchUp = row.catch_up if row.catch_up in ("skip", "once", "all") else "once"  # type: ignore[assignment]
            fires = spec.due_fires(
                row.last_fire_at,
                row.anchor,
                now,
                catch_up=catch_up,
                window=policy.catch_up_window,
                grace=policy.misfire_grace,
            )
            # "all" hands out a bounded batch: with more missed, come back at once for the next.
            more = catch_up == "all" and len(fires) >= CATCH_UP_LIMIT
            next_fire = now if more else spec.next_fire(max(now, fires[-1] if fires else now), row.anchor)
            wake_at = min(wake_at, next_fire)
            if fires:
                work.append(_Work(row, fires, next_fire))
            elif row.next_fire_at != next_fire and math.isfinite(next_fire):
                work.append(_Work(row, [], next_fire))
        return work, wake_at

    def _policy(self, row: ScheduleRow) -> Schedule:
        """Window and grace come from the code's definition when it matches the row; else the defaults."""
        entry = self.registry.schedules.get(row.name)
        return entry if isinstance(entry, Schedule) and entry.spec.digest == row.digest else _DEFAULT

    def _new_job(self, row: ScheduleRow) -> Any:
        task = self.registry.tasks.get(row.task)
        attempts = (
            task.attempts(self.jobs.settings.attempts) if task is not None else self.jobs.settings.attempts
        )
        timeout = task.timeout if task is not None else None
        ttl = task.result_ttl if task is not None else None

        def make(fire: float) -> NewJob:
            return NewJob(
                queue=row.queue, task=row.task, args=row.args, priority=row.priority, run_at=fire,
                max_attempts=attempts, timeout=timeout, result_ttl=ttl, schedule=row.name, fire_at=fire,
            )  # fmt: skip

        return make

    def _fire(self, item: _Work, now: float) -> Plan[Fired] | Plan[int]:
        if not item.fires:
            return set_next_plan(item.row, item.next_fire)
        return fire_plan(
            item.row,
            item.fires,
            item.next_fire,
            now,
            make_job=self._new_job(item.row),
            bounds=self.registry.bounds(),
            result_ttl=self.jobs.settings.result_ttl,
            dialect=self.jobs.store.dialect,
        )

    def tick(self) -> Pass:
        """One pass: create every due fire's job (exactly once across schedulers); what it did."""
        if not self._reconciled:
            self.reconcile()
        self.jobs.ensure_schema()
        rows = self.jobs.store.run(load_plan, write=False)
        work, done = self._start(rows)
        for item in work:
            now = self.clock.time()
            try:
                result = self.jobs.store.run(lambda item=item, now=now: self._fire(item, now))  # type: ignore[misc]
            except BackendUnavailable:
                raise
            except ButtressError as exc:  # this schedule's trouble; the others still fire
                self._schedule_failed(item.row.name, exc)
                continue
            self._record(done, item, result, now)
        now = self.clock.time()
        if self._prune_due(now):
            self.jobs.store.run(lambda: prune_ticks_plan(now - self.tick_retention))
        return self._passed(done)

    async def atick(self) -> Pass:
        """Async :meth:`tick`."""
        if not self._reconciled:
            await self.areconcile()
        await self.jobs.aensure_schema()
        rows = await self.jobs.store.arun(load_plan, write=False)
        work, done = self._start(rows)
        for item in work:
            now = self.clock.time()
            try:
                result = await self.jobs.store.arun(lambda item=item, now=now: self._fire(item, now))  # type: ignore[misc]
            except BackendUnavailable:
                raise
            except ButtressError as exc:  # this schedule's trouble; the others still fire
                self._schedule_failed(item.row.name, exc)
                continue
            self._record(done, item, result, now)
        now = self.clock.time()
        if self._prune_due(now):
            await self.jobs.store.arun(lambda: prune_ticks_plan(now - self.tick_retention))
        return self._passed(done)

    def _prune_due(self, now: float) -> bool:
        if self._pruned_at is None:
            self._pruned_at = now
        if now - self._pruned_at < _PRUNE_EVERY:
            return False
        self._pruned_at = now
        return True

    def _start(self, rows: Sequence[ScheduleRow]) -> tuple[list[_Work], Pass]:
        work, wake_at = self._plan_work(rows, self.clock.time())
        return work, Pass(wake_at=wake_at)

    def _record(self, done: Pass, item: _Work, result: object, now: float) -> None:
        if not isinstance(result, Fired):
            return
        name = item.row.name
        done.fired[name] = result
        self.schedule_errors.pop(name, None)
        for fire, _job_id in result.created:
            self._lag.observe(max(0.0, now - fire))
        for outcome, count in (
            ("created", len(result.created)),
            ("skipped", len(result.skipped)),
            ("queue_full", len(result.queue_full)),
        ):
            if count:
                self._fires.labels(schedule=name, outcome=outcome).inc(count)

    def _schedule_failed(self, name: str, exc: BaseException) -> None:
        self.schedule_errors[name] = describe_exception(exc)
        _log.warning("schedule %s could not fire: %s", name, self.schedule_errors[name])

    def _passed(self, done: Pass) -> Pass:
        self.passes += 1
        self.consecutive_errors = 0
        self.last_pass_at = self.clock.time()
        if done.created or any(fired.cancelled for fired in done.fired.values()):
            self.jobs.wake()
        for name, fired in done.fired.items():
            if fired.created or fired.skipped or fired.queue_full:
                _log.debug(
                    "schedule %s fired: %d created, %d skipped (overlap), %d refused (queue full)",
                    name, len(fired.created), len(fired.skipped), len(fired.queue_full),
                )  # fmt: skip
            if fired.queue_full:
                _log.warning(
                    "schedule %s: %d fires found their queue full (no job created)",
                    name,
                    len(fired.queue_full),
                )
        return done

    # -- the loop -----------------------------------------------------------------------------------

    def _delay(self, done: Pass | None) -> float:
        if done is None:  # the pass failed: back off (capped), then try again
            return _BACKOFF.base(self.consecutive_errors)
        return max(0.0, min(done.wake_at - self.clock.time(), self.max_sleep))

    def _failed(self, exc: Exception) -> None:
        self._failures.inc()
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = describe_exception(exc)
        self.last_error_at = self.clock.time()
        _log.warning(
            "scheduler pass failed (%d in a row), retrying in %.1f s: %s",
            self.consecutive_errors, _BACKOFF.base(self.consecutive_errors), self.last_error,
        )  # fmt: skip

    def stop(self) -> None:
        """Ask :meth:`run` / :meth:`arun` to return after the current pass."""
        self._stop.set()

    def run(self) -> None:
        """Pass after pass until :meth:`stop`; a failing pass is logged and retried with backoff."""
        self.started_at = self.clock.time()
        while not self._stop.is_set():
            done: Pass | None = None
            try:
                done = self.tick()
            except Exception as exc:  # noqa: BLE001 - any failure: log, back off, keep firing
                self._failed(exc)
            delay = self._delay(done)
            if self.wait_on_clock:
                self.clock.sleep(delay)
            else:
                self._stop.wait(delay)

    async def arun(self) -> None:
        """Async :meth:`run` (cancel the task or call :meth:`stop` to end it)."""
        self.started_at = self.clock.time()
        self._between_passes = between = asyncio.Event()
        while not self._stop.is_set():
            done: Pass | None = None
            between.clear()
            try:
                done = await self.atick()
            except Exception as exc:  # noqa: BLE001 - any failure: log, back off, keep firing
                self._failed(exc)
            finally:
                between.set()
            delay = self._delay(done)
            await (self.clock.asleep(delay) if self.wait_on_clock else asyncio.sleep(delay))

    async def ahalt(self, wait: float = 2.0) -> None:
        """Stop :meth:`arun` and wait (on its loop) until no pass is half-way through a database call, so
        cancelling its task then interrupts only a sleep."""
        self.stop()
        between = self._between_passes
        if between is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(between.wait(), wait)

    # -- health -------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Passes, errors, when the last pass got through and the last error."""
        return {
            "passes": self.passes,
            "errors": self.errors,
            "consecutive_errors": self.consecutive_errors,
            "last_pass_at": self.last_pass_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "started_at": self.started_at,
            "max_sleep": self.max_sleep,
            "schedule_errors": dict(self.schedule_errors),
        }

    def check(self) -> CheckResult:
        """``pass`` while passes get through; ``warn`` after a failed pass; ``fail`` when none got through
        for 30 s (observed value: seconds since the last good pass)."""
        now = self.clock.time()
        since = self.last_pass_at if self.last_pass_at is not None else self.started_at
        age = None if since is None else max(0.0, now - since)
        if self.consecutive_errors == 0 and not self.schedule_errors:
            return CheckResult("pass", observed_value=age, observed_unit="s")
        if self.consecutive_errors == 0:
            failing = "; ".join(f"{name}: {error}" for name, error in sorted(self.schedule_errors.items()))
            return CheckResult("warn", f"schedules that cannot fire: {failing}", age, "s")
        output = f"{self.consecutive_errors} scheduler passes failed in a row; last: {self.last_error}"
        status: HealthStatus = "fail" if age is None or age > 30 else "warn"
        return CheckResult(status, output + " (schedules fire again when the database answers)", age, "s")


def _log_reconciled(done: Reconciled) -> None:
    for what, names in (
        ("created", done.created),
        ("changed (anchored now: the old expression will not fire)", done.changed),
        ("reactivated", done.reactivated),
        ("updated", done.updated),
        ("deactivated (no longer defined in code)", done.deactivated),
    ):
        if names:
            _log.info("schedules %s: %s", what, ", ".join(names))
