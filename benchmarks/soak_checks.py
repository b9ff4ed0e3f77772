"""The soak's checks: what the nodes logged and what the job tables hold, turned into pass/fail figures.

Each check is a number and the bound it must stay within; each drill's cost is read from the window
between it and the next drill (the first window, before any drill, is the baseline).
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, text

from benchmarks.soak_plan import BREAKER_OPEN_S, LIMIT_BURST, LIMIT_RATE, TICK_EVERY, TICK_SCHEDULE

__all__ = ["Check", "Drill", "DrillCost", "Outcome", "evaluate"]

INVALIDATION_WINDOW: Final = 2.0  # BUTTRESS_CACHE__L1_TTL: the longest an L1 copy may outlive a write
REDIS_RECOVERY_S: Final = 5.0  # after Redis is back, the tiered cache's probe clears every L1 within this
LIMIT_WINDOWS: Final = (1.0, 10.0)
SLOW_DEFER_S: Final = 1.0  # a defer slower than this is degraded service
SLOW_JOB_S: Final = 2.0  # a job waiting longer than this from defer to done is degraded service


@dataclass(frozen=True)
class Drill:
    """One failure the chaos loop caused: what, from when to when, and the node it aimed at."""

    name: str
    start: float
    end: float
    detail: str
    target: int | None = None


@dataclass(frozen=True)
class Check:
    name: str
    figure: str
    passed: bool


@dataclass(frozen=True)
class DrillCost:
    """What callers saw in one drill's window: errors by operation, and how long service was degraded."""

    drill: Drill
    window: float
    errors: dict[str, int]
    degraded_s: float
    slowest_defer_s: float
    slowest_job_s: float
    limiter_gap_s: float
    stale_reads: int


@dataclass
class Outcome:
    nodes: int
    began: float
    ended: float
    checks: list[Check]
    costs: list[DrillCost]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def summary(self) -> dict[str, Any]:
        return {check.name: {"passed": check.passed, "figure": check.figure} for check in self.checks}


def _events(directory: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted(directory.glob("node-*.jsonl")):
        node = int(path.stem.split("-")[1])
        events += [json.loads(line) | {"node": node} for line in path.read_text().splitlines()]
    return events


# -- the checks -------------------------------------------------------------------------------------------


def rate_limit(admitted: list[tuple[float, float]]) -> Check:
    """Admissions whose whole call lies inside any window of W seconds never exceed rate x W + burst."""
    calls = sorted(admitted)
    worst: list[str] = []
    passed = True
    for width in LIMIT_WINDOWS:
        allowed = LIMIT_RATE * width + LIMIT_BURST
        most = 0
        for i, (start, _) in enumerate(calls):
            inside = 0
            for other_start, other_end in calls[i:]:
                if other_start > start + width:
                    break
                inside += int(other_end <= start + width)
            most = max(most, inside)
        passed = passed and most <= allowed
        worst.append(f"{most} in {width:g} s (limit {allowed:g})")
    figure = f"{len(calls)} admitted by {LIMIT_RATE:g}/s burst {LIMIT_BURST}; most: " + ", ".join(worst)
    return Check("rate limit never exceeded across nodes", figure, passed)


def breaker(events: list[dict[str, Any]], drills: list[Drill], nodes: int) -> tuple[Check, list[float]]:
    """After a node trips the breaker, every node's next call is refused while it is still open."""
    by_node: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for event in events:
        if event["k"] == "brk":
            by_node[event["node"]].append((event["t"], event["o"]))
    for calls in by_node.values():
        calls.sort()
    slowest: list[float] = []
    missed = 0
    for drill in (d for d in drills if d.name == "breaker trip"):
        own = [(t, o) for t, o in by_node[drill.target or 0] if t >= drill.start]
        first_open = next((t for t, o in own if o == "open"), None)
        if first_open is None:
            missed += nodes
            continue
        tripped = max((t for t, o in own if o == "fail" and t < first_open), default=first_open)
        seen = []
        for node in range(nodes):
            t = next((t for t, o in by_node[node] if o == "open" and t >= tripped), None)
            if t is None or t - tripped > BREAKER_OPEN_S:
                missed += 1
            else:
                seen.append(t - tripped)
        slowest.append(max(seen, default=0.0))
    trips = len(slowest)
    figure = (
        f"{trips} trips; nodes that missed one: {missed}; slowest node saw it open "
        f"{max(slowest, default=0.0):.3f} s after the trip (bound: the {BREAKER_OPEN_S:g} s it stays open)"
    )
    return Check("one breaker trip seen by every node", figure, missed == 0 and trips > 0), slowest


def schedules(engine: Engine, began: float, ended: float, completions: dict[int, int]) -> Check:
    """Every tick of the schedule from before the load began to after it ended made one job, done once."""
    with engine.connect() as connection:
        ticks = connection.execute(
            text(
                "SELECT fire_at, outcome, job_id FROM buttress_job_ticks WHERE schedule = :s ORDER BY fire_at"
            ),
            {"s": TICK_SCHEDULE},
        ).all()
        per_fire = connection.execute(
            text("SELECT fire_at, count(*) FROM buttress_jobs WHERE schedule = :s GROUP BY fire_at"),
            {"s": TICK_SCHEDULE},
        ).all()
    fires = [float(row[0]) for row in ticks]
    missing = sum(round((b - a) / TICK_EVERY) - 1 for a, b in itertools.pairwise(fires))
    doubled = sum(1 for _, count in per_fire if count > 1)
    outcomes = Counter(row[1] for row in ticks)
    not_once = sum(1 for row in ticks if row[2] is None or completions.get(int(row[2]), 0) != 1)
    covered = bool(fires) and fires[0] <= began + 2 * TICK_EVERY and fires[-1] >= ended - 2 * TICK_EVERY
    figure = (
        f"{len(fires)} ticks every {TICK_EVERY:g} s ({dict(outcomes)}); missing {missing}, "
        f"fired twice {doubled}, job not done exactly once {not_once}; cover the run: {covered}"
    )
    passed = missing == 0 and doubled == 0 and not_once == 0 and covered
    return Check("every schedule tick fired exactly once", figure, passed)


def jobs(
    engine: Engine, deferred: list[int], completions: dict[int, int], runs: Counter[int], drained: bool
) -> Check:
    """Every job (deferred by a node or fired by the scheduler) completed once: none lost, none twice."""
    with engine.connect() as connection:
        rows: dict[int, str] = {
            int(row[0]): str(row[1])
            for row in connection.execute(text("SELECT id, status FROM buttress_jobs"))
        }
    unknown = sum(1 for job_id in deferred if job_id not in rows)
    twice = sum(1 for count in completions.values() if count > 1)
    never = sum(1 for job_id in rows if completions.get(job_id, 0) == 0)
    reran = sum(1 for count in runs.values() if count > 1)
    unfinished = dict(Counter(status for status in rows.values() if status != "succeeded"))
    figure = (
        f"{len(rows)} jobs ({len(deferred)} deferred by nodes); lost {unknown + never}, not succeeded "
        f"{sum(unfinished.values())}{f' {unfinished}' if unfinished else ''}, completed twice {twice}; "
        f"bodies run again after a kill: {reran} (at-least-once execution, each completed once); "
        f"queue drained: {drained}"
    )
    passed = drained and unknown == 0 and never == 0 and not unfinished and twice == 0 and bool(rows)
    return Check("every job done exactly once", figure, passed)


def stale_reads(
    events: list[dict[str, Any]], outages: list[tuple[float, float]]
) -> tuple[Check, list[float]]:
    """A read is stale when a newer version of its key was written more than the window before it.

    Reads and writes while the node's tiered cache was degraded (its L2 unreachable, by a Redis drill or
    a Redis call that timed out on a loaded machine) follow the outage policy instead: counted apart.
    """
    writes: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for event in events:
        if event["k"] == "write" and not event["deg"]:  # a degraded write may reach the writer's L1 only
            writes[event["key"]].append((event["t1"], event["v"]))
    for series in writes.values():
        series.sort()
    degraded_writes = sum(1 for event in events if event["k"] == "write" and event["deg"])
    stale_at: list[float] = []
    outside, reads, misses, worst = 0, 0, 0, 0.0
    for event in events:
        if event["k"] != "read":
            continue
        reads += 1
        if event["v"] is None:
            misses += 1
            continue
        series = writes[event["key"]]
        done = bisect.bisect_right(series, (event["t0"] - INVALIDATION_WINDOW, float("inf")))
        if done and series[done - 1][1] > event["v"]:
            newer = next(t for t, v in series if v > event["v"])
            stale_at.append(event["t0"])
            if not event["deg"] and not any(a <= event["t0"] <= b for a, b in outages):
                outside += 1
                worst = max(worst, event["t0"] - newer)
    figure = (
        f"{reads} reads ({misses} misses); stale past the {INVALIDATION_WINDOW:g} s window outside Redis "
        f"outages: {outside} (oldest {worst:.2f} s); during Redis outages or while degraded (L1 serves "
        f"what it holds, by policy): {len(stale_at) - outside}; writes while the writer was degraded "
        f"(they reach its own L1 only, so they are not held against readers): {degraded_writes}"
    )
    return Check("no cache value stale past the invalidation window", figure, outside == 0), stale_at


# -- what each drill cost ---------------------------------------------------------------------------------


def _union(intervals: list[tuple[float, float]], low: float, high: float) -> float:
    total, reach = 0.0, low
    for start, end in sorted(intervals):
        a, b = max(start, reach), min(end, high)
        if b > a:
            total += b - a
            reach = b
    return total


def costs(
    events: list[dict[str, Any]],
    *,
    drills: list[Drill],
    began: float,
    ended: float,
    job_times: list[tuple[float, float]],
    stale_at: list[float],
) -> list[DrillCost]:
    """Per window (the baseline, then one per drill up to the next): errors, slow calls, degraded seconds."""
    baseline = Drill("baseline (no drill)", began, drills[0].start if drills else ended, "")
    windows = [baseline, *drills]
    admitted = sorted(e["t0"] for e in events if e["k"] == "adm")
    out = []
    for i, drill in enumerate(windows):
        low, high = drill.start, windows[i + 1].start if i + 1 < len(windows) else ended
        errors: Counter[str] = Counter()
        bad: list[tuple[float, float]] = []
        slowest_defer = 0.0
        for event in events:
            t = event.get("t", event.get("t1", event.get("t0", 0.0)))  # a defer counts where it returned
            if not low <= t < high:
                continue
            if event["k"] == "err":
                errors[f"{event['op']}: {event['e']}"] += 1
                bad.append((t, t + 0.1))
            elif event["k"] == "brk" and event["o"] == "open":
                label = "breaker open (intended)" if drill.name == "breaker trip" else "breaker: CircuitOpen"
                errors[label] += 1
                bad.append((t, t + 0.1))
            elif event["k"] == "defer":
                slowest_defer = max(slowest_defer, event["t1"] - event["t0"])
                if event["t1"] - event["t0"] > SLOW_DEFER_S:
                    bad.append((event["t0"], event["t1"]))
        slowest_job = 0.0
        for created, finished in job_times:  # a job counts where it finished: a killed one, late
            if low <= finished < high:
                slowest_job = max(slowest_job, finished - created)
                if finished - created > SLOW_JOB_S:
                    bad.append((created, finished))
        inside = [low, *[t for t in admitted if low <= t < high], high]
        gaps = [(a, b) for a, b in itertools.pairwise(inside)]
        gap = max((b - a for a, b in gaps), default=0.0)
        bad += [(a, b) for a, b in gaps if b - a > 1.0]
        out.append(
            DrillCost(
                drill,
                high - low,
                dict(errors),
                _union(bad, low, high),
                slowest_defer,
                slowest_job,
                gap,
                sum(1 for t in stale_at if low <= t < high),
            )
        )
    return out


def evaluate(
    directory: Path,
    engine: Engine,
    drills: list[Drill],
    began: float,
    ended: float,
    *,
    nodes: int,
    drained: bool,
) -> Outcome:
    """Every check and every drill's cost for one finished run."""
    events = _events(directory)
    runs_path = directory / "runs.jsonl"
    runs_lines = (
        [json.loads(line) for line in runs_path.read_text().splitlines()] if runs_path.exists() else []
    )
    runs = Counter(int(line["job"]) for line in runs_lines if line["job"] is not None)
    with engine.connect() as connection:
        completions = {
            int(a): int(b)
            for a, b in connection.execute(
                text("SELECT job_id, count(*) FROM soak_completions GROUP BY job_id")
            ).all()
        }
        job_times = [
            (float(a), float(b))
            for a, b in connection.execute(
                text("SELECT created_at, finished_at FROM buttress_jobs WHERE finished_at IS NOT NULL")
            ).all()
        ]
    deferred = [int(e["job"]) for e in events if e["k"] == "defer"]
    outages = [(d.start, d.end + REDIS_RECOVERY_S) for d in drills if d.name == "Redis restart"]
    stale_check, stale_at = stale_reads(events, outages)
    breaker_check, _ = breaker(events, drills, nodes)
    checks = [
        rate_limit([(e["t0"], e["t1"]) for e in events if e["k"] == "adm"]),
        breaker_check,
        schedules(engine, began, ended, completions),
        jobs(engine, deferred, completions, runs, drained),
        stale_check,
    ]
    counts = Counter(e["k"] for e in events)
    return Outcome(
        nodes,
        began,
        ended,
        checks,
        costs(events, drills=drills, began=began, ended=ended, job_times=job_times, stale_at=stale_at),
        dict(counts),
    )
