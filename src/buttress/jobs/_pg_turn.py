"""A PostgreSQL worker's turn in one statement, on a connection the worker keeps for it.

The turn is the hot path: record the attempts that ended and lease as many due jobs as there are free
slots. Through the async engine it is a transaction of four round trips (BEGIN, the completions, the
lease, COMMIT) costing about 1 ms of worker CPU; here it is one autocommit statement whose two
data-modifying CTEs run atomically (the completions as arrays through ``unnest``, the lease with
``FOR UPDATE SKIP LOCKED``) and return one row. It is the same SQL as the unlimited path of
:func:`~buttress.jobs._plans.fetch_plan`, fenced the same way; a fetch under concurrency limits keeps the
plan (it needs its lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg

from buttress.errors import BackendUnavailable
from buttress.jobs._plans import Completion, FetchRequest, Leased
from buttress.jobs._states import JobStatus

__all__ = ["PostgresTurns"]

_TURN: Final = """
WITH done AS (
    UPDATE buttress_jobs AS j SET status = d.status, result = d.result, error = d.error,
        run_at = COALESCE(d.run_at, j.run_at), finished_at = d.finished_at, expires_at = d.expires_at,
        lease_expires = NULL, progress = COALESCE(d.progress, j.progress),
        message = COALESCE(d.message, j.message)
    FROM unnest(%(ids)s::bigint[], %(tokens)s::int[], %(statuses)s::text[], %(results)s::text[],
                %(errors)s::text[], %(run_ats)s::float8[], %(finished)s::float8[], %(expires_ats)s::float8[],
                %(progress)s::float8[], %(messages)s::text[])
        AS d(id, token, status, result, error, run_at, finished_at, expires_at, progress, message)
    WHERE j.id = d.id AND j.lease_token = d.token AND j.status = 'running'
    RETURNING j.id
), leased AS (
    UPDATE buttress_jobs SET status = 'running', attempts = attempts + 1, lease_token = lease_token + 1,
        lease_expires = %(expires)s, worker = %(worker)s, started_at = %(now)s, cancel_requested = 0,
        progress = NULL, message = NULL
    WHERE id IN (
        SELECT id FROM buttress_jobs
        WHERE status IN ('queued', 'scheduled', 'retrying') AND run_at <= %(now)s
            AND queue = ANY(%(queues)s) AND task = ANY(%(tasks)s)
        ORDER BY priority DESC, id LIMIT %(slots)s FOR UPDATE SKIP LOCKED
    )
    RETURNING id, task, queue, args, attempts, max_attempts, lease_token, timeout, result_ttl, priority,
        created_at, run_at
)
SELECT (SELECT count(*) FROM done), (SELECT coalesce(json_agg(leased), '[]'::json) FROM leased)
"""


def _arrays(completions: Sequence[Completion], now: float) -> dict[str, list[Any]]:
    return {
        "ids": [done.id for done in completions],
        "tokens": [done.token for done in completions],
        "statuses": [done.status.value for done in completions],
        "results": [done.result for done in completions],
        "errors": [done.error for done in completions],
        "run_ats": [done.run_at for done in completions],
        "finished": [None if done.status is JobStatus.RETRYING else now for done in completions],
        "expires_ats": [done.expires_at for done in completions],
        "progress": [done.progress for done in completions],
        "messages": [done.message for done in completions],
    }


def _leased(row: dict[str, Any]) -> Leased:
    return Leased(
        id=int(row["id"]), task=row["task"], queue=row["queue"], args=row["args"], attempts=row["attempts"],
        max_attempts=row["max_attempts"], token=row["lease_token"], timeout=row["timeout"],
        result_ttl=row["result_ttl"], priority=row["priority"], created_at=row["created_at"],
        run_at=row["run_at"],
    )  # fmt: skip


class PostgresTurns:
    """Runs a worker's turns on one autocommit psycopg connection (reconnected after a failure)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def turn(
        self, request: FetchRequest, completions: Sequence[Completion], now: float
    ) -> tuple[int, list[Leased]]:
        """Apply ``completions``, lease up to ``request.slots`` jobs: (completions applied, jobs leased)."""
        params = {
            **_arrays(completions, now),
            "expires": now + request.lease,
            "worker": request.worker,
            "now": now,
            "queues": list(request.queues),
            "tasks": list(request.tasks),
            "slots": max(0, request.slots),
        }
        try:
            if self._connection is None or self._connection.closed:
                self._connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            cursor = await self._connection.execute(_TURN, params)
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            await self.close()
            raise BackendUnavailable(
                f"the job database did not answer a worker's turn: {type(exc).__name__}",
                backend="postgresql",
            ) from exc
        assert row is not None  # noqa: S101 - one row, always
        applied, leased = row
        jobs = [_leased(item) for item in leased]
        jobs.sort(key=lambda job: (-job.priority, job.id))
        return int(applied), jobs

    async def close(self) -> None:
        """Close the connection (the next turn opens a new one)."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            await connection.close()
