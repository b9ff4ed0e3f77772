"""What happened, read back from the database: outcomes, runs, results, and the workers' HTTP stats.

Every figure is counted from durable state (the jobs table, podpromo's tables), not from the demo's
memory, so "0 lost" and "0 completed twice" are checks against what is stored, and they hold for the
killed worker's share too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from buttress.db import Database
from buttress.jobs import JobInfo, JobStatus
from examples.podpromo.pipeline import CLIPS_PER_EPISODE
from examples.podpromo.tables import clips, host_stats, results, runs

__all__ = [
    "Kill",
    "Run",
    "failure_reasons",
    "job_outcomes",
    "kill_cost",
    "read_runs",
    "result_checks",
    "sum_host_stats",
]

TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD}


@dataclass(frozen=True, slots=True)
class Run:
    """One start of a job body, as the job recorded it."""

    job_id: int
    pid: int
    attempt: int
    started_at: float
    finished_at: float | None


@dataclass(slots=True)
class Kill:
    """The worker the demo killed, when, and the jobs it was running at that moment."""

    pid: int
    at: float
    jobs: list[int] = field(default_factory=list)
    replacement: int | None = None


def read_runs(db: Database, job_ids: Iterable[int]) -> list[Run]:
    """Every recorded start of these jobs' bodies, oldest first."""
    ids = list(job_ids)
    query = select(runs.c.job_id, runs.c.pid, runs.c.attempt, runs.c.started_at, runs.c.finished_at)
    with db.session() as session:
        found = session.execute(query.where(runs.c.job_id.in_(ids)).order_by(runs.c.id)).all() if ids else []
    return [Run(*row) for row in found]


def failure_reasons(infos: Iterable[JobInfo]) -> dict[str, int]:
    """Why the failed jobs failed: their last error's first words (the error type and its first clause)."""
    reasons = Counter(
        (info.error or "?").split(";")[0][:120]
        for info in infos
        if info.status in {JobStatus.FAILED, JobStatus.DEAD}
    )
    return dict(reasons.most_common())


def job_outcomes(infos: Iterable[JobInfo]) -> dict[str, int]:
    """Jobs by final status (``dead`` counts as failed: its attempts are spent)."""
    counts = Counter("failed" if info.status is JobStatus.DEAD else info.status.value for info in infos)
    return {
        name: counts.get(name, 0)
        for name in ("succeeded", "failed", "cancelled", "queued", "running", "retrying")
    }


def result_checks(db: Database, jobs: Mapping[str, JobInfo], bodies: list[Run]) -> dict[str, Any]:
    """Lost, completed twice, ran more than once: each accepted episode against the rows it left.

    Completed twice means a second result row for an episode. A job body may still run to its end twice
    (at least once: a worker that stalls past its lease finishes a copy whose completion is fenced off);
    that is counted apart, and it is why the job writes its results as upserts keyed by the episode.
    """
    files = list(jobs)
    with db.session() as session:
        result_rows = Counter(
            session.execute(select(results.c.file_id).where(results.c.file_id.in_(files))).scalars().all()
        )
        clip_rows: dict[str, int] = dict(
            session.execute(
                select(clips.c.file_id, func.count())
                .where(clips.c.file_id.in_(files))
                .group_by(clips.c.file_id)
            ).all()
        )
    finished = Counter(run.job_id for run in bodies if run.finished_at is not None)
    started = Counter(run.job_id for run in bodies)
    succeeded = {file_id for file_id, info in jobs.items() if info.status is JobStatus.SUCCEEDED}
    lost = [
        file_id
        for file_id, info in jobs.items()
        if info.status not in TERMINAL or (file_id in succeeded and result_rows[file_id] != 1)
    ]
    return {
        "lost": len(lost),
        "completed_twice": sum(1 for count in result_rows.values() if count > 1),
        "ran_more_than_once": sum(1 for count in started.values() if count > 1),
        "bodies_finished_more_than_once": sum(1 for count in finished.values() if count > 1),
        "result_rows_per_episode_ok": all(result_rows[file_id] == 1 for file_id in succeeded),
        "clips_per_episode_ok": all(clip_rows.get(file_id) == CLIPS_PER_EPISODE for file_id in succeeded),
        "results_of_unsucceeded": sum(result_rows[file_id] for file_id in jobs if file_id not in succeeded),
    }


def kill_cost(
    kill: Kill | None, lease: float, jobs: Mapping[int, JobInfo], bodies: list[Run]
) -> dict[str, Any]:
    """The killed worker's jobs: re-leased elsewhere, how long after the kill, and how they ended."""
    if kill is None:
        return {"killed": False}
    again = [
        run for run in bodies if run.job_id in kill.jobs and run.pid != kill.pid and run.started_at >= kill.at
    ]
    first_again: dict[int, float] = {}
    for run in again:
        first_again.setdefault(run.job_id, run.started_at)
    recovered = [job for job in kill.jobs if job in first_again and jobs[job].status is JobStatus.SUCCEEDED]
    delays = [first_again[job] - kill.at for job in recovered]
    return {
        "killed": True,
        "worker_pid": kill.pid,
        "replacement_pid": kill.replacement,
        "lease_seconds": lease,
        "running_at_kill": len(kill.jobs),
        "recovered": len(recovered),
        "not_recovered": len(kill.jobs) - len(recovered),
        "re_leased_after_seconds": round(max(delays), 2) if delays else None,
    }


def sum_host_stats(db: Database, pids: Iterable[int]) -> dict[str, dict[str, float]]:
    """Per policy (transcribe, clips, thumbnails), the workers' HTTP stats added up."""
    columns = (
        "requests",
        "retries",
        "breaker_openings",
        "rejected_breaker",
        "limiter_waits",
        "limiter_wait_seconds",
    )
    totals: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(columns, 0))
    with db.session() as session:
        found = session.execute(select(host_stats).where(host_stats.c.pid.in_(list(pids)))).mappings().all()
    for row in found:
        for column in columns:
            totals[row["policy"]][column] += row[column]
    return {policy: {k: round(v, 2) for k, v in values.items()} for policy, values in sorted(totals.items())}
