"""A PostgreSQL worker's turn in one statement, on a connection the worker keeps for it.

The turn is the hot path: record the attempts that ended and lease as many due jobs as there are free
slots. Through the async engine it is a transaction of four round trips (BEGIN, the completions, the
lease, COMMIT) costing about 1 ms of worker CPU; here it is one autocommit statement whose two
data-modifying CTEs run atomically (the completions as one JSON array of records, the lease with
``FOR UPDATE SKIP LOCKED``) and return one row. It is the same SQL as the unlimited path of
:func:`~buttress.jobs._plans.fetch_plan`, fenced the same way; a fetch under concurrency limits keeps the
plan (it needs its lock).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import psycopg

from buttress.errors import BackendUnavailable
from buttress.jobs._plans import Completion, FetchRequest, Leased

__all__ = ["PostgresTurns"]

_TURN: Final = """
WITH done AS (
    UPDATE buttress_jobs AS j SET status = d.status, result = d.result, error = d.error,
        run_at = COALESCE(d.run_at, j.run_at), finished_at = d.finished_at, expires_at = d.expires_at,
        lease_expires = NULL, progress = COALESCE(d.progress, j.progress),
        message = COALESCE(d.message, j.message)
    FROM json_to_recordset(%(done)s::json) AS d(
        id bigint, token int, status text, result text, error text, run_at float8, finished_at float8,
        expires_at float8, progress float8, message text)
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


def _records(completions: Sequence[Completion], now: float) -> str:
    """The completions as one JSON array (cheaper to send than ten typed arrays)."""
    return json.dumps([done.row(now) for done in completions], separators=(",", ":"))


def _leased(row: dict[str, Any]) -> Leased:
    return Leased(
        id=int(row["id"]), task=row["task"], queue=row["queue"], args=row["args"], attempts=row["attempts"],
        max_attempts=row["max_attempts"], token=row["lease_token"], timeout=row["timeout"],
        result_ttl=row["result_ttl"], priority=row["priority"], created_at=row["created_at"],
        run_at=row["run_at"],
    )  # fmt: skip


class PostgresTurns:
    """Runs a worker's turns on one autocommit psycopg connection (reconnected after a failure)."""

    def __init__(self, conninfo: str, *, pooled: bool = False) -> None:
        self._conninfo = conninfo
        # through a transaction pooler the next turn may run on another server session: prepare nothing
        self._prepare: dict[str, Any] = {"prepare_threshold": None} if pooled else {}
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def turn(
        self, request: FetchRequest, completions: Sequence[Completion], now: float
    ) -> tuple[int, list[Leased]]:
        """Apply ``completions``, lease up to ``request.slots`` jobs: (completions applied, jobs leased)."""
        params = {
            "done": _records(completions, now),
            "expires": now + request.lease,
            "worker": request.worker,
            "now": now,
            "queues": list(request.queues),
            "tasks": list(request.tasks),
            "slots": max(0, request.slots),
        }
        try:
            if self._connection is None or self._connection.closed:
                self._connection = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, **self._prepare
                )
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
