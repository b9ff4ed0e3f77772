"""The cache on the ops server: GET /cache/stats, POST /cache/warm (admin), warming at startup, health."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from buttress.cache import Cache, MemoryBackend, reset_cache, set_cache
from buttress.cache._warm import warmer, warmers_of
from buttress.clock import FakeClock
from buttress.config import reset_settings
from buttress.observe.metrics import MetricsRegistry
from tests._ports import free_port
from tests.server.conftest import ADMIN_TOKEN, bearer, build, client_for

WAIT = 10.0  # seconds a test waits for a thread it released; never reached when things work


@pytest.fixture(autouse=True)
def _isolated(isolated_settings: None) -> Iterator[None]:
    """No BUTTRESS_* settings, no process-wide cache, and no warmers of other tests' dead caches."""
    gc.collect()
    reset_cache()
    yield
    reset_cache()
    gc.collect()


@pytest.fixture
def cache() -> Iterator[Cache]:
    clock = FakeClock()
    cache = Cache(MemoryBackend(clock=clock), clock=clock, metrics=MetricsRegistry(clock=clock))
    set_cache(cache)
    yield cache
    set_cache(None)


async def test_stats_report_the_process_cache_and_are_public(cache: Cache) -> None:
    search = cache.namespaced("search")
    for term in range(120):
        search.get_or_set(f"q:{term}", lambda: ["hit"])
    cache.set("k", 1)
    cache.get("k")
    built = build(admin_token=ADMIN_TOKEN)  # admin auth configured: the stats stay public all the same
    async with client_for(built.app) as client:
        answer = await client.get("/cache/stats")
    assert answer.status_code == 200
    document = answer.json()
    assert document["backend"]["name"] == "memory"
    rows = {row["namespace"]: row for row in document["namespaces"]}
    assert (rows["search"]["lookups"], rows["search"]["misses"], rows["search"]["entries"]) == (120, 120, 120)
    assert (rows["default"]["hits"], rows["default"]["hit_rate"]) == (1, 1.0)
    assert [(r["namespace"], r["code"]) for r in document["recommendations"]] == [
        ("search", "keys_too_specific")
    ]


async def test_stats_build_the_process_cache_from_settings() -> None:
    built = build()
    async with client_for(built.app) as client:
        document = (await client.get("/cache/stats")).json()
    assert document["backend"]["name"] == "memory"
    assert document["backend"]["requested"] == "auto"
    assert document["backend"]["reason"] == "BUTTRESS_REDIS_URL is not set"
    assert document["default_ttl"] == 3600.0


async def test_without_admin_auth_there_is_no_warm_endpoint(cache: Cache) -> None:
    warmer(cache, "popular")(lambda: None)
    built = build()
    async with client_for(built.app) as client:
        assert (await client.post("/cache/warm")).status_code in (404, 405)
        spec = (await client.get("/openapi.json")).json()
    assert "/cache/stats" in spec["paths"]
    assert "/cache/warm" not in spec["paths"]


async def test_admin_warm_runs_the_named_warmers_in_the_background(cache: Cache) -> None:
    done = threading.Event()
    ran: list[str] = []

    @warmer(cache, "popular")
    def popular() -> None:
        cache.set("top", ["a", "b"])
        ran.append("popular")
        done.set()

    @warmer(cache, "other")
    def other() -> None:
        ran.append("other")

    built = build(admin_token=ADMIN_TOKEN)
    async with client_for(built.app) as client:
        assert (await client.post("/cache/warm", json={"names": ["popular"]})).status_code == 401
        answer = await client.post("/cache/warm", json={"names": ["popular"]}, headers=bearer(ADMIN_TOKEN))
        assert answer.status_code == 202
        assert answer.json() == {"started": ["popular"]}
        assert done.wait(WAIT)
        assert cache.get("top") == ["a", "b"]
        spec = (await client.get("/openapi.json")).json()
    assert set(spec["paths"]["/cache/warm"]["post"]["responses"]) >= {"202", "401", "404", "409", "422"}
    assert ran == ["popular"]


async def test_admin_warm_without_a_body_runs_every_warmer(cache: Cache) -> None:
    finished = threading.Event()
    warmer(cache, "first")(lambda: cache.set("first", 1))
    warmer(cache, "second", on_startup=False)(finished.set)
    built = build(admin_token=ADMIN_TOKEN)
    async with client_for(built.app) as client:
        answer = await client.post("/cache/warm", headers=bearer(ADMIN_TOKEN))
    assert answer.json() == {"started": ["first", "second"]}  # on_startup=False too: asked for explicitly
    assert finished.wait(WAIT)
    assert cache.get("first") == 1


async def test_admin_warm_with_a_body_that_is_not_json_is_a_documented_400(cache: Cache) -> None:
    built = build(admin_token=ADMIN_TOKEN)
    async with client_for(built.app) as client:
        answer = await client.post(
            "/cache/warm",
            content=b"\xc3\x28",
            headers={**bearer(ADMIN_TOKEN), "Content-Type": "application/json"},
        )
        documented = (await client.get("/openapi.json")).json()["paths"]["/cache/warm"]["post"]["responses"]
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "bad_request"
    assert "400" in documented  # schemathesis found this undocumented once


async def test_admin_warm_refuses_unknown_names_and_a_second_run(cache: Cache) -> None:
    release, entered = threading.Event(), threading.Event()

    @warmer(cache, "blocking")
    def blocking() -> None:
        entered.set()
        assert release.wait(WAIT)

    built = build(admin_token=ADMIN_TOKEN)
    headers = bearer(ADMIN_TOKEN)
    try:
        async with client_for(built.app) as client:
            missing = await client.post("/cache/warm", json={"names": ["nope"]}, headers=headers)
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            assert missing.json()["detail"] == "no cache warmer named 'nope'; registered: blocking"
            assert (await client.post("/cache/warm", headers=headers)).status_code == 202
            assert entered.wait(WAIT)
            busy = await client.post("/cache/warm", headers=headers)
            assert busy.status_code == 409
            assert "already in progress (blocking)" in busy.json()["detail"]
            wrong = await client.post("/cache/warm", json={"names": "blocking"}, headers=headers)
            assert wrong.status_code == 422
    finally:
        release.set()


async def test_admin_warm_with_no_warmers_registered_is_a_404() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    async with client_for(built.app) as client:
        answer = await client.post("/cache/warm", headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 404
    assert "no cache warmers are registered in this process" in answer.json()["detail"]


async def test_startup_does_not_wait_for_a_slow_warmer(cache: Cache) -> None:
    release = threading.Event()

    @warmer(cache, "slow")
    def slow() -> None:
        assert release.wait(WAIT)
        cache.set("warm", True)  # noqa: FBT003 - the value under test

    built = build()
    try:
        async with built.app.router.lifespan_context(built.app):
            [thread] = built.ops.warming
            assert thread.is_alive()
            assert warmers_of(cache)["slow"].running
        assert thread.is_alive()  # startup and shutdown both went by without waiting for it
    finally:
        release.set()
    thread.join(WAIT)
    assert cache.get("warm") is True


async def test_startup_warming_can_be_switched_off(cache: Cache) -> None:
    ran: list[str] = []
    warmer(cache, "popular")(lambda: ran.append("popular"))
    built = build(cache={"warm_on_startup": False})
    async with built.app.router.lifespan_context(built.app):
        assert built.ops.warming == []
    assert ran == []


async def test_health_reports_the_memory_cache(cache: Cache) -> None:
    built = build(default_health=True)
    async with client_for(built.app) as client:
        document = (await client.get("/health")).json()
    [check] = document["checks"]["cache"]
    assert check["status"] == "pass"
    assert check["componentType"] == "datastore"
    assert check["critical"] is False


async def test_health_warns_when_auto_could_not_reach_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    reset_settings()
    built = build(default_health=True)
    try:
        async with client_for(built.app) as client:
            document = (await client.get("/health")).json()
    finally:
        built.health.close()
    [check] = document["checks"]["cache"]
    assert check["status"] == "warn"
    assert check["output"].startswith("memory backend (Redis at redis://127.0.0.1:")
    assert "did not answer at startup" in check["output"]
    assert document["status"] == "fail"  # the critical redis check fails; the cache only warns
