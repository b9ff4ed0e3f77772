"""SQLite and PostgreSQL in lockstep under hypothesis: the same operations at the same times, same answers.

The plans are one body for both databases, but each speaks its own SQL where they differ (SKIP LOCKED,
advisory locks, id sequences); this machine defers, leases with and without limits, completes, fails,
cancels, lets leases expire and sweeps, on both stores with one clock, and requires every answer and every
job's state to agree. Ids differ between the two (a PostgreSQL sequence moves on a folded key), so jobs are
compared by the order they were created in.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import text
from tests.jobs.conftest import fresh_database

from buttress.db import Database
from buttress.errors import NotFoundError, QueueFull
from buttress.jobs import JobStatus
from buttress.jobs._plans import (
    Completion,
    FetchRequest,
    NewJob,
    cancel_plan,
    complete_plan,
    defer_plan,
    fetch_plan,
    get_plan,
    sweep_plan,
)
from buttress.jobs._states import after_failure
from buttress.jobs._store import SqlJobStore, store_for

TASKS = ("plain", "limited")
QUEUES = ("main", "bounded")
BOUNDS = {"bounded": 3}
LEASE = 30.0


@pytest.fixture
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[SqlJobStore]]:
    urls = [fresh_database(request, tmp_path, kind) for kind in ("sqlite", "postgresql")]
    opened = [Database(next(url)) for url in urls]
    try:
        for db in opened:
            db.upgrade()
        yield [store_for(db) for db in opened]
    finally:
        for db in opened:
            db.close()
        for url in urls:
            next(url, None)


def test_sqlite_and_postgresql_answer_alike(stores: list[SqlJobStore]) -> None:
    class Lockstep(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            for store in stores:
                with store.db.engine.begin() as connection:
                    connection.execute(text("DELETE FROM buttress_jobs"))
            self.now = 1_700_000_000.0
            self.ids: list[tuple[int, ...]] = []  # per logical job: its id in each store
            self.held: list[tuple[int, tuple[Any, ...]]] = []  # leased: (logical, per-store Leased)

        def both(self, make: Any) -> list[Any]:
            out = []
            for store in stores:
                try:
                    out.append(("ok", store.run(functools.partial(make, store))))
                except QueueFull:
                    out.append(("full", None))
            return out

        def logical(self, index: int, job_id: int) -> int:
            return next(n for n, ids in enumerate(self.ids) if ids[index] == job_id)

        @rule(
            task=st.sampled_from(TASKS),
            queue=st.sampled_from(QUEUES),
            priority=st.integers(-1, 2),
            delay=st.sampled_from([0.0, 0.0, 10.0]),
            key=st.sampled_from([None, None, "a", "b"]),
            count=st.integers(1, 2),
        )
        def defer(
            self, *, task: str, queue: str, priority: int, delay: float, key: str | None, count: int
        ) -> None:
            new = [
                NewJob(queue=queue, task=task, args='{"args":[],"kwargs":{}}', priority=priority,
                       run_at=self.now + delay, max_attempts=2, key=key)
                for _ in range(count)
            ]  # fmt: skip
            answers = self.both(lambda store: defer_plan(new, self.now, BOUNDS, store.dialect))
            assert [kind for kind, _ in answers] == [answers[0][0]] * 2
            if answers[0][0] == "full":
                return
            per_store = [ids for _, ids in answers]
            for position in range(len(per_store[0])):
                pair = tuple(ids[position] for ids in per_store)
                known = [n for n, ids in enumerate(self.ids) if ids[0] == pair[0]]
                known_other = [n for n, ids in enumerate(self.ids) if ids[1] == pair[1]]
                assert known == known_other  # folded into the same job in both, or new in both
                if not known:
                    self.ids.append(pair)

        @rule(worker=st.sampled_from(["w1", "w2"]), slots=st.integers(1, 3), limited=st.booleans())
        def fetch(self, worker: str, slots: int, limited: bool) -> None:
            request = FetchRequest(
                worker=worker, queues=QUEUES, tasks=TASKS, slots=slots, lease=LEASE,
                task_limits={"limited": 1} if limited else {}, queue_limits={"bounded": 2} if limited else {},
            )  # fmt: skip
            answers = self.both(lambda store: fetch_plan(request, [], self.now, store.dialect))
            leased = [list(answer) for _, answer in answers]
            logical = [[self.logical(i, job.id) for job in jobs] for i, jobs in enumerate(leased)]
            assert logical[0] == logical[1]
            assert [job.token for job in leased[0]] == [job.token for job in leased[1]]
            for n, pair in zip(logical[0], zip(*leased, strict=True), strict=True):
                self.held.append((n, pair))

        @rule(data=st.data(), succeed=st.booleans())
        def complete(self, data: st.DataObject, succeed: bool) -> None:
            if not self.held:
                return
            n, pair = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
            dones = []
            for leased in pair:
                if succeed:
                    dones.append(Completion(leased.id, leased.token, JobStatus.SUCCEEDED, result="1"))
                else:
                    outcome = after_failure(
                        attempts=leased.attempts, max_attempts=leased.max_attempts, retryable=True, delay=5,
                        now=self.now,
                    )  # fmt: skip
                    dones.append(
                        Completion(leased.id, leased.token, outcome.status, error="x", run_at=outcome.run_at)
                    )
            applied = [
                store.run(functools.partial(complete_plan, [done], self.now))
                for store, done in zip(stores, dones, strict=True)
            ]
            assert applied[0] == applied[1], n

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            if not self.ids:
                return
            n = data.draw(st.integers(0, len(self.ids) - 1))
            statuses: list[JobStatus | None] = []
            for i, store in enumerate(stores):
                try:
                    statuses.append(
                        store.run(
                            functools.partial(cancel_plan, self.ids[n][i], self.now, 100.0, store.dialect)
                        )
                    )
                except NotFoundError:  # purged after its TTL: gone from both
                    statuses.append(None)
            assert statuses[0] == statuses[1]

        @rule(seconds=st.sampled_from([1.0, 6.0, 31.0]))
        def advance(self, seconds: float) -> None:
            self.now += seconds

        @rule()
        def sweep(self) -> None:
            answers = [
                store.run(functools.partial(sweep_plan, self.now, 1000.0, 300.0, store.dialect))
                for store in stores
            ]
            reclaimed = [
                sorted((self.logical(i, job_id), status) for job_id, status, _, _ in answer.reclaimed)
                for i, answer in enumerate(answers)
            ]
            assert reclaimed[0] == reclaimed[1]
            assert answers[0].purged == answers[1].purged

        @invariant()
        def same_jobs(self) -> None:
            rows = []
            for i, store in enumerate(stores):
                states = []
                for ids in self.ids:
                    info = store.run(functools.partial(get_plan, ids[i], self.now), write=False)
                    states.append(
                        None if info is None else (info.status, info.attempts, info.lease_token, info.run_at)
                    )
                rows.append(states)
            assert rows[0] == rows[1]

    run_state_machine_as_test(
        Lockstep,
        settings=settings(max_examples=25, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )  # fmt: skip
