"""The jobs on the ops server: ``GET /jobs``, ``GET /jobs/{id}``, ``GET /queue/stats`` and the admin
``POST /jobs/{id}/cancel`` and ``/retry``, on SQLite and PostgreSQL.

A job's arguments, result, error and key reach only admins (or development): an anonymous reader gets
them as null, and a secret passed as an argument appears nowhere in what it reads.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.jobs._support import db_url, jobs, module_pg_url, sql

from buttress.config import Settings
from buttress.container import get_container
from buttress.jobs import JobContext, Jobs, JobStatus, Registry, job
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from buttress.observe.profiler import Profiler
from buttress.observe.system import SystemSampler
from buttress.server import create_app, install

__all__ = ["db_url", "jobs", "module_pg_url"]

ADMIN = "ops-routes-admin-token-0123456789"
SECRET = "tok-routes-4f9a-secret"
PROBLEM = "application/problem+json"


@job(queue="ops-routes-mail", name="ops_routes.send")
def send(to: str, token: str) -> dict[str, str]:
    return {"sent": to, "token": token}


@job(queue="ops-routes-mail", name="ops_routes.fail", retry=1)
def fail(token: str) -> None:
    raise ValueError(f"refused {token}")


@job(queue="ops-routes-video", name="ops_routes.encode")
async def encode(ctx: JobContext, episode: int) -> int:
    ctx.progress(0.5, "half way")
    return episode


def app_for(*, admin: bool = True, expose_details: bool = False) -> FastAPI:
    security = {"admin_token": ADMIN} if admin else {}
    settings = Settings(_env_file=None, security=security, server={"expose_details": expose_details})
    return create_app(
        settings,
        health=HealthRegistry(),
        metrics=MetricsRegistry(),
        errors=ErrorAggregator(),
        profiler=Profiler(),
        sampler=SystemSampler(3600.0),
    )


@pytest.fixture(autouse=True)
def _isolated(isolated_settings: None) -> None:
    """No BUTTRESS_* variables, a fresh container, an empty working directory."""


@pytest.fixture
def served(jobs: Jobs) -> Iterator[Jobs]:
    """``jobs`` as the process's Jobs (what the routes read)."""
    with get_container().override(Jobs, jobs):
        yield jobs


@pytest.fixture
async def client(served: Jobs) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app_for()) as http:
        yield http


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://ops.test")


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


async def run_all(jobs: Jobs) -> None:
    """Run every due job once (a burst worker)."""
    await jobs.worker(tasks=["ops_routes.send", "ops_routes.fail", "ops_routes.encode"]).run(burst=True)


async def defer_mixed(jobs: Jobs) -> dict[str, int]:
    """A succeeded, a dead, a queued and a cancelled job; their ids by name."""
    sent = send.configure(jobs=jobs).defer("ada@example.com", SECRET)
    failed = fail.configure(jobs=jobs).defer(SECRET)
    await run_all(jobs)
    waiting = send.configure(jobs=jobs, key=f"key-{SECRET}").defer("bob@example.com", SECRET)
    dropped = encode.configure(jobs=jobs, delay=3600).defer(7)
    dropped.cancel()
    return {"sent": sent.id, "failed": failed.id, "waiting": waiting.id, "dropped": dropped.id}


async def test_anonymous_readers_get_no_arguments_results_errors_or_keys(
    served: Jobs, client: httpx.AsyncClient
) -> None:
    ids = await defer_mixed(served)
    listed = await client.get("/jobs")
    assert listed.status_code == 200
    page = listed.json()
    assert [row["id"] for row in page["jobs"]] == sorted(ids.values(), reverse=True)
    assert page["next_before_id"] is None
    by_id = {row["id"]: row for row in page["jobs"]}
    sent = by_id[ids["sent"]]
    assert sent["status"] == "succeeded"
    assert (sent["task"], sent["queue"], sent["attempts"], sent["details"]) == (
        "ops_routes.send",
        "ops-routes-mail",
        1,
        False,
    )
    for row in page["jobs"]:
        assert (row["args"], row["kwargs"], row["result"], row["error"], row["key"]) == (None,) * 5
    assert by_id[ids["failed"]]["status"] == "dead"
    one = await client.get(f"/jobs/{ids['failed']}")
    assert one.status_code == 200
    assert one.json()["error"] is None
    assert one.json()["details"] is False
    assert SECRET not in listed.text
    assert SECRET not in one.text
    assert "ada@example.com" not in listed.text


async def test_admins_see_what_jobs_were_called_with_and_what_came_of_it(
    served: Jobs, client: httpx.AsyncClient
) -> None:
    ids = await defer_mixed(served)
    listed = (await client.get("/jobs", headers=admin())).json()["jobs"]
    by_id = {row["id"]: row for row in listed}
    sent = by_id[ids["sent"]]
    assert (sent["args"], sent["kwargs"], sent["details"]) == (["ada@example.com", SECRET], {}, True)
    assert sent["result"] == {"sent": "ada@example.com", "token": SECRET}
    assert by_id[ids["waiting"]]["key"] == f"key-{SECRET}"
    failed = (await client.get(f"/jobs/{ids['failed']}", headers=admin())).json()
    assert failed["error"] == f"ValueError: refused {SECRET}"
    wrong = await client.get("/jobs", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401  # a wrong credential is refused, not read as anonymous


async def test_development_shows_details_without_credentials(served: Jobs) -> None:
    ids = await defer_mixed(served)
    async with _client(app_for(admin=False, expose_details=True)) as http:
        row = (await http.get(f"/jobs/{ids['sent']}")).json()
    assert row["details"] is True
    assert row["kwargs"] == {}
    assert row["args"] == ["ada@example.com", SECRET]


async def test_filters_and_pages(served: Jobs, client: httpx.AsyncClient) -> None:
    ids = await defer_mixed(served)
    extra = [send.configure(jobs=served).defer(f"n{n}@example.com", "t").id for n in range(3)]

    async def ids_of(**params: Any) -> list[int]:
        answer = await client.get("/jobs", params=params)
        assert answer.status_code == 200, answer.text
        return [row["id"] for row in answer.json()["jobs"]]

    assert await ids_of(status="queued") == sorted([*extra, ids["waiting"]], reverse=True)
    assert await ids_of(status=["dead", "cancelled"]) == sorted([ids["failed"], ids["dropped"]], reverse=True)
    assert await ids_of(queue="ops-routes-video") == [ids["dropped"]]
    assert await ids_of(task="ops_routes.fail") == [ids["failed"]]
    assert await ids_of(queue="ops-routes-mail", status="succeeded") == [ids["sent"]]
    first = (await client.get("/jobs", params={"limit": 2})).json()
    assert [row["id"] for row in first["jobs"]] == sorted(extra, reverse=True)[:2]
    assert first["next_before_id"] == first["jobs"][-1]["id"]
    rest = await ids_of(before_id=first["next_before_id"], limit=1000)
    assert rest == sorted([*ids.values(), min(extra)], reverse=True)
    for bad in ({"status": "lost"}, {"limit": 0}, {"limit": 1001}, {"before_id": 0}, {"before_id": 2**63}):
        answer = await client.get("/jobs", params=bad)
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"] == PROBLEM


async def test_a_missing_job_is_a_404_problem(client: httpx.AsyncClient) -> None:
    answer = await client.get("/jobs/424242")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert "no job 424242" in answer.json()["detail"]
    assert (await client.get("/jobs/not-a-number")).status_code == 422
    assert (await client.get(f"/jobs/{2**63}")).status_code == 422  # past bigint: refused before any query


async def test_queue_stats_count_every_queue_and_the_workers(served: Jobs, client: httpx.AsyncClient) -> None:
    await defer_mixed(served)
    sql(
        served,
        "INSERT INTO buttress_job_workers (id, host, pid, queues, concurrency, started_at, heartbeat_at) "
        "VALUES ('w-1', 'box', 42, 'ops-routes-mail,ops-routes-video', 4, :now, :now)",
        now=served.clock.time(),
    )
    answer = await client.get("/queue/stats")
    assert answer.status_code == 200
    stats = answer.json()
    assert set(stats["queues"]) == set(served.stats().queues)
    mail = stats["queues"]["ops-routes-mail"]
    assert mail["counts"] == {"succeeded": 1, "dead": 1, "queued": 1}
    assert (mail["depth"], mail["stalled"]) == (1, 0)
    assert mail["oldest_seconds"] >= 0
    assert stats["queues"]["ops-routes-video"]["counts"] == {"cancelled": 1}
    [worker] = stats["workers"]
    assert (worker["id"], worker["host"], worker["pid"], worker["queues"], worker["concurrency"]) == (
        "w-1",
        "box",
        42,
        ["ops-routes-mail", "ops-routes-video"],
        4,
    )
    assert 0 <= worker["heartbeat_age"] < 60


async def test_admins_cancel_and_retry_jobs(served: Jobs, client: httpx.AsyncClient) -> None:
    ids = await defer_mixed(served)
    waiting = ids["waiting"]
    refused = await client.post(f"/jobs/{waiting}/cancel")
    assert refused.status_code == 401
    assert served.get(waiting).status is JobStatus.QUEUED  # nothing happened without credentials
    cancelled = await client.post(f"/jobs/{waiting}/cancel", headers=admin())
    assert (cancelled.status_code, cancelled.json()) == (200, {"id": waiting, "status": "cancelled"})
    assert served.get(waiting).status is JobStatus.CANCELLED
    again = await client.post(f"/jobs/{waiting}/cancel", headers=admin())
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")  # idempotent
    finished = await client.post(f"/jobs/{ids['sent']}/cancel", headers=admin())
    assert finished.status_code == 409
    assert "already ended succeeded" in finished.json()["detail"]
    retried = await client.post(f"/jobs/{ids['failed']}/retry", headers=admin())
    assert (retried.status_code, retried.json()) == (200, {"id": ids["failed"], "status": "queued"})
    info = served.get(ids["failed"])
    assert (info.status, info.attempts, info.error) == (JobStatus.QUEUED, 0, None)
    not_again = await client.post(f"/jobs/{ids['sent']}/retry", headers=admin())
    assert not_again.status_code == 409
    assert served.get(ids["sent"]).status is JobStatus.SUCCEEDED
    for action in ("cancel", "retry"):
        missing = await client.post(f"/jobs/999999/{action}", headers=admin())
        assert missing.status_code == 404
        assert missing.headers["content-type"] == PROBLEM


async def test_cancelling_a_running_job_asks_its_worker(served: Jobs, client: httpx.AsyncClient) -> None:
    handle = encode.configure(jobs=served).defer(3)
    sql(served, "UPDATE buttress_jobs SET status = 'running', worker = 'w-9', lease_expires = :t", t=1e12)
    answer = await client.post(f"/jobs/{handle.id}/cancel", headers=admin())
    assert (answer.status_code, answer.json()["status"]) == (200, "running")
    assert served.get(handle.id).cancel_requested is True


async def test_without_admin_auth_the_actions_do_not_exist(served: Jobs) -> None:
    handle = send.configure(jobs=served).defer("x@example.com", "t")
    async with _client(app_for(admin=False)) as http:
        assert (await http.post(f"/jobs/{handle.id}/cancel")).status_code in (404, 405)
        assert (await http.post(f"/jobs/{handle.id}/retry")).status_code in (404, 405)
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert served.get(handle.id).status is JobStatus.QUEUED
    assert {"/jobs", "/jobs/{job_id}", "/queue/stats"} <= set(paths)
    assert "/jobs/{job_id}/cancel" not in paths


async def test_an_app_mounts_the_routes_under_its_prefix(served: Jobs) -> None:
    handle = send.configure(jobs=served).defer("x@example.com", "t")
    app = FastAPI()
    install(
        app,
        Settings(_env_file=None, security={"admin_token": ADMIN}),
        health=HealthRegistry(),
        metrics=MetricsRegistry(),
        errors=ErrorAggregator(),
        sampler=SystemSampler(3600.0),
    )
    async with _client(app) as http:
        assert (await http.get(f"/ops/jobs/{handle.id}")).json()["task"] == "ops_routes.send"
        cancelled = await http.post(f"/ops/jobs/{handle.id}/cancel", headers=admin())
    assert cancelled.json()["status"] == "cancelled"


async def test_without_jobs_in_use_reading_creates_no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("buttress.server._routes_jobs.REGISTRY", Registry())  # a program that defines no jobs
    async with _client(app_for()) as http:
        listed = await http.get("/jobs")
        stats = await http.get("/queue/stats")
        one = await http.get("/jobs/1")
        cancel = await http.post("/jobs/1/cancel", headers=admin())
    assert (listed.status_code, listed.json()) == (200, {"jobs": [], "next_before_id": None})
    assert stats.json() == {"queues": {}, "workers": []}
    assert (one.status_code, cancel.status_code) == (404, 404)
    assert "not in use" in one.json()["detail"]
    assert get_container().peek(Jobs) is None
    assert os.listdir(".") == []  # no buttress.db


async def test_schedules_list_their_policies_and_next_fires(served: Jobs, client: httpx.AsyncClient) -> None:
    from buttress.jobs import ScheduleSpec

    spec = ScheduleSpec(every=60)
    now = served.clock.time()
    sql(
        served,
        "INSERT INTO buttress_job_schedules (name, spec, digest, task, queue, priority, args, catch_up, "
        "overlap, anchor, last_fire_at, next_fire_at, active, updated_at) "
        "VALUES ('ops-minutely', :spec, :digest, 'ops.tick', 'ops-routes-mail', 0, :args, 'once', 'skip', "
        ":anchor, :last, :next, 1, :anchor)",
        args='{"args":[],"kwargs":{}}',
        spec=spec.text,
        digest=spec.digest,
        anchor=now - 600,
        last=now - 60,
        next=now,
    )
    answer = await client.get("/schedules", params={"count": 2})
    assert answer.status_code == 200
    [row] = [item for item in answer.json() if item["name"] == "ops-minutely"]
    assert (row["spec"], row["catch_up"], row["overlap"], row["active"]) == (
        "every 60s",
        "once",
        "skip",
        True,
    )
    assert row["last_fire_at"] == now - 60
    assert len(row["next_fires"]) == 2
    assert row["next_fires"][1] - row["next_fires"][0] == 60
    assert (await client.get("/schedules", params={"count": 0})).status_code == 422
