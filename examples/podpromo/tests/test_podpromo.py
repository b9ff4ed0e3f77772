"""podpromo end to end: uploads refused or queued, jobs that land results, cancel, a full queue, the
scheduled cleanup on an injected clock, and the ops routes' counts. Real upstreams, real SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, make_url, select

from buttress.clock import Clock, FakeClock
from buttress.config import reset_settings
from buttress.container import get_container, reset_container
from buttress.db import Database
from buttress.files import get_files
from buttress.http import get_async_http_client
from buttress.jobs import Scheduler, define_queue, get_jobs
from buttress.testing import Upstream
from examples.podpromo.app import MAX_EPISODE_SIZE
from examples.podpromo.pipeline import CONCURRENCY, QUEUE, QUEUE_SIZE
from examples.podpromo.tables import clips, create_tables, results
from examples.podpromo.tests.conftest import wav
from examples.podpromo.upkeep import DAY


async def upload(
    client: httpx.AsyncClient, data: bytes, name: str = "ep.wav", show: str = "ana"
) -> httpx.Response:
    return await client.post(
        f"/shows/{show}/episodes", files={"episode": (name, data)}, data={"priority": "5"}
    )


async def counts(client: httpx.AsyncClient) -> tuple[int, dict[str, int]]:
    """Files stored and the episodes queue's jobs by status, as the ops routes report them."""
    storage = (await client.get("/ops/storage/stats")).json()
    queue = (await client.get("/ops/queue/stats")).json()["queues"].get(QUEUE, {"counts": {}})
    return storage["stored"]["files"], queue["counts"]


def rows(table: object) -> int:
    with get_container().resolve(Database).session() as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


async def test_refused_uploads_store_and_queue_nothing(client: httpx.AsyncClient) -> None:
    too_big = await upload(client, wav(MAX_EPISODE_SIZE))
    assert too_big.status_code == 413
    assert too_big.json()["error_code"] == "file_too_large"
    not_audio = await upload(client, b"<?php echo 1; ?>", name="ep.wav")
    assert not_audio.status_code == 415
    assert not_audio.json()["error_code"] == "file_type_rejected"
    first = await upload(client, wav(60_000, seed=1))  # ana's quota is 100 KB
    assert first.status_code == 202
    over_quota = await upload(client, wav(60_000, seed=2))
    assert over_quota.status_code == 429
    assert over_quota.json()["error_code"] == "quota_exceeded"
    assert await counts(client) == (1, {"queued": 1})


async def test_an_upload_becomes_one_job_whose_results_land_in_the_database(
    client: httpx.AsyncClient, services: Upstream
) -> None:
    accepted = [(await upload(client, wav(4000, seed=n), name=f"ep{n}.wav")).json() for n in range(3)]
    assert await counts(client) == (3, {"queued": 3})
    await get_jobs().worker(concurrency=3).run(burst=True)

    for episode in accepted:
        status = (await client.get(f"/jobs/{episode['job']}")).json()
        assert (status["status"], status["progress"]) == ("succeeded", 1.0)
    assert await counts(client) == (3, {"succeeded": 3})
    page = (await client.get("/shows/ana/results")).json()
    assert sorted(row["file_id"] for row in page) == sorted(episode["file"] for episode in accepted)
    assert {row["thumbnail_error"] for row in page} <= {"upstream_error", "circuit_open"}
    assert "circuit_open" in {row["thumbnail_error"] for row in page}  # the dead host's breaker opened
    assert rows(clips) == 9
    assert services.calls("transcribe") > 3  # the flaky host's 503s were retried
    assert services.calls("thumbnails") == 0  # it is down: nothing ever reached it


async def test_cancel_a_waiting_job_and_read_its_status(client: httpx.AsyncClient) -> None:
    episode = (await upload(client, wav(2000))).json()
    assert (await client.get(f"/jobs/{episode['job']}")).json()["status"] == "queued"
    assert (await client.post(f"/jobs/{episode['job']}/cancel")).json()["status"] == "cancelled"
    await get_jobs().worker().run(burst=True)
    assert (await client.get(f"/jobs/{episode['job']}")).json()["status"] == "cancelled"
    assert rows(results) == 0
    assert (await client.get("/jobs/999")).status_code == 404


@pytest.fixture
def small_queue() -> Iterator[None]:
    define_queue(QUEUE, max_size=1, concurrency=CONCURRENCY)
    yield
    define_queue(QUEUE, max_size=QUEUE_SIZE, concurrency=CONCURRENCY)


async def test_a_full_queue_refuses_and_keeps_no_file(client: httpx.AsyncClient, small_queue: None) -> None:
    assert (await upload(client, wav(1000, seed=1))).status_code == 202
    refused = await upload(client, wav(1000, seed=2))
    assert refused.status_code == 503
    assert refused.json()["error_code"] == "queue_full"
    assert await counts(client) == (1, {"queued": 1})


def test_the_scheduled_cleanup_archives_old_episodes(services: Upstream) -> None:
    from examples.podpromo import upkeep

    clock = FakeClock()
    with get_container().override(Clock, clock):
        create_tables(get_container().resolve(Database))
        store = get_files()
        old = store.save(wav(1000), name="old.wav", owner="ana")
        clock.advance(20 * DAY)
        recent = store.save(wav(1000, seed=1), name="recent.wav", owner="ana")
        clock.advance(11 * DAY)  # old is 31 days old, recent 11
        scheduler = Scheduler(get_jobs())
        scheduler.tick()  # first pass stores the schedule
        clock.advance(3600)
        assert scheduler.tick().created == 1
        asyncio.run(get_jobs().worker(scheduler=False).run(burst=True))
        [done] = get_jobs().list(task=upkeep.cleanup.name)
        assert done.status.value == "succeeded", done.error
        assert done.result["archived"] == 1
        assert (store.stat(old.id).state, store.stat(recent.id).state) == ("archived", "stored")


@pytest.fixture
def postgres(database_url: str, services: Upstream, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database of podpromo's own on the test PostgreSQL server, as BUTTRESS_DATABASE_URL."""
    import psycopg

    server = make_url(database_url)
    with psycopg.connect(
        server.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    ) as admin:
        admin.execute("DROP DATABASE IF EXISTS podpromo_test WITH (FORCE)")
        admin.execute("CREATE DATABASE podpromo_test")
    url = server.set(database="podpromo_test").render_as_string(hide_password=False)
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", url)
    reset_settings()
    reset_container()
    return url


async def test_the_same_flow_on_postgresql(postgres: str) -> None:
    from examples.podpromo.app import create_app

    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        accepted = [(await upload(client, wav(3000, seed=n), name=f"ep{n}.wav")).json() for n in range(2)]
        assert (await upload(client, b"plain text\n", name="ep.wav")).status_code == 415
        await get_jobs().worker(concurrency=2).run(burst=True)
        assert await counts(client) == (2, {"succeeded": 2})
        assert len((await client.get("/shows/ana/results")).json()) == 2
        assert get_container().resolve(Database).info()["backend"] == "postgresql"
    await get_async_http_client().aclose()
    assert {episode["type"] for episode in accepted} == {"audio/x-wav"}
