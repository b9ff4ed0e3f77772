"""The API on embedded defaults (SQLite, memory cache): errors, warming and cache stats, the profiler's
and the breakers' admin endpoints, and the query tracker on the lookup by birth date."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from buttress.testing import Upstream
from examples.astrology.app import create_app
from examples.astrology.batch import compute_batch
from examples.astrology.ephemeris import EPHEMERIS_ENV
from examples.astrology.zodiac import today

from .conftest import ADMIN, serving, wait_for

PROBLEM = "application/problem+json"


def test_an_unknown_sign_is_a_404_problem_with_its_code_and_context_in_development(
    client: httpx.Client,
) -> None:
    response = client.get("/signs/ophiuchus/daily")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["error_code"] == "not_found"
    assert problem["status"] == 404
    assert problem["context"]["resource_id"] == "ophiuchus"
    assert "aries" in problem["context"]["known_signs"]


def test_a_reading_id_out_of_range_is_a_422_not_a_500(client: httpx.Client) -> None:
    for reading_id in ("99999999999999999999", str(2**63), "0", "-1"):
        response = client.get(f"/readings/{reading_id}")
        assert response.status_code == 422, (reading_id, response.text)
    assert client.get(f"/readings/{2**63 - 1}").status_code == 404  # in range, no such reading


def test_in_production_the_problem_keeps_its_code_and_drops_the_context(
    configure: Callable[..., None],
) -> None:
    configure(BUTTRESS_APP__ENVIRONMENT="production")
    with serving(create_app()) as client:
        problem = client.get("/signs/ophiuchus/daily").json()
    assert (problem["error_code"], problem["status"]) == ("not_found", 404)
    assert "context" not in problem
    assert "traceback" not in problem


def _warmer(client: httpx.Client) -> dict[str, Any] | None:
    stats = client.get("/ops/cache/stats").json()
    [warmer] = [w for w in stats["warmers"] if w["name"] == "daily"]
    return warmer if warmer["last"] is not None and not warmer["running"] else None


def _horoscopes(client: httpx.Client) -> dict[str, Any]:
    stats = client.get("/ops/cache/stats").json()
    [found] = [n for n in stats["namespaces"] if n["namespace"] == "horoscopes"]
    return dict(found)


def test_startup_warms_todays_horoscopes_so_reads_are_hits(client: httpx.Client) -> None:
    warmer = wait_for(lambda: _warmer(client))  # the ops lifespan started it in the background
    assert warmer["last"]["outcome"] == "ok"
    assert warmer["last"]["items"] == 12
    before = _horoscopes(client)  # the counters are the process's metrics: compare, do not count from 0
    for sign in ("aries", "leo", "pisces"):
        assert client.get(f"/signs/{sign}/daily").json()["day"] == today().isoformat()
    after = _horoscopes(client)
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (3, 0)
    assert after["entries"] == 12
    other_day = client.get("/signs/aries/daily", params={"day": "2026-01-01"}).json()
    assert other_day["moon_source"] == "local"  # no ephemeris configured: computed here
    assert _horoscopes(client)["misses"] == after["misses"] + 1


def test_warming_on_demand_is_an_admin_endpoint(client: httpx.Client) -> None:
    wait_for(lambda: _warmer(client))
    assert client.post("/ops/cache/warm").status_code == 401
    assert client.post("/ops/cache/warm", headers={"Authorization": "Bearer wrong"}).status_code == 401
    sets = _horoscopes(client)["sets"]
    response = client.post("/ops/cache/warm", json={"names": ["daily"]}, headers=ADMIN)
    assert response.status_code == 202
    # every live cache with a `daily` warmer runs it: earlier tests' caches may still be alive in this process
    assert set(response.json()["started"]) == {"daily"}
    wait_for(lambda: _horoscopes(client)["sets"] >= sets + 12)
    missing = client.post("/ops/cache/warm", json={"names": ["weekly"]}, headers=ADMIN)
    assert (missing.status_code, missing.json()["error_code"]) == (404, "not_found")


def test_the_profiler_is_switched_by_admins_and_reports_the_readings(client: httpx.Client) -> None:
    assert client.get("/ops/profiler").json()["enabled"] is False
    assert client.post("/ops/profiler/start").status_code == 401
    assert client.post("/ops/profiler/start", headers=ADMIN).status_code == 200
    client.get("/signs/aries/daily", params={"day": "2026-02-02"})  # a miss: the text is computed
    report = client.get("/ops/profiler").json()
    assert report["enabled"] is True
    names = {entry["name"]: entry for entry in report["by_total"]}
    assert names["astrology.daily"]["count"] == 1
    assert client.post("/ops/profiler/stop", headers=ADMIN).status_code == 200
    assert client.post("/ops/profiler/reset", headers=ADMIN).status_code == 200
    assert client.get("/ops/profiler").json()["by_total"] == []


def test_without_admin_auth_the_admin_endpoints_do_not_exist(configure: Callable[..., None]) -> None:
    configure(BUTTRESS_SECURITY__ADMIN_TOKEN=None, BUTTRESS_SERVER__JWT_KEY=None)
    with serving(create_app()) as client:
        assert client.get("/ops/profiler").status_code == 200  # reads stay open, as on the ops server
        assert client.get("/ops/breakers").status_code == 200
        for path in ("/ops/profiler/start", "/ops/cache/warm", "/ops/breakers/anything/isolate"):
            assert client.post(path).status_code == 404
        batch = client.post("/batches", json={"people": [{"name": "Ada", "birth_date": "1990-04-17"}]})
        assert batch.json()["token"] is None  # no key to sign channel tokens with


def _breaker(client: httpx.Client, name: str) -> dict[str, Any]:
    [found] = [b for b in client.get("/ops/breakers").json() if b["name"] == name]
    return dict(found)


def test_the_ephemeris_breaker_is_listed_isolated_and_reset_by_admins(
    configure: Callable[..., None], upstream: Upstream
) -> None:
    configure(**{EPHEMERIS_ENV: upstream.url()})
    name = f"http:{upstream.host()}"
    with serving(create_app()) as client:
        first = client.get("/signs/aries/daily", params={"day": "2026-03-03"}).json()
        assert first["moon_source"] == "ephemeris"
        assert upstream.calls() >= 1
        assert _breaker(client, name)["state"] == "closed"

        assert client.post(f"/ops/breakers/{name}/isolate").status_code == 401
        assert client.post(f"/ops/breakers/{name}/isolate", headers=ADMIN).status_code == 200
        assert _breaker(client, name)["state"] == "forced_open"
        before = upstream.calls()
        isolated = client.get("/signs/aries/daily", params={"day": "2026-03-04"}).json()
        assert isolated["moon_source"] == "fallback"  # refused by the breaker, computed here instead
        assert upstream.calls() == before  # the upstream never saw it

        assert client.post(f"/ops/breakers/{name}/reset", headers=ADMIN).status_code == 200
        assert _breaker(client, name)["state"] == "closed"
        again = client.get("/signs/aries/daily", params={"day": "2026-03-04"}).json()
        assert again["moon_source"] == "ephemeris"  # the fallback was not cached
        assert upstream.calls() > before  # called again (a retry under load may make it two calls)


def test_the_lookup_by_birth_date_is_tracked_and_advice_names_its_index_on_sqlite(
    client: httpx.Client,
) -> None:
    people = [{"name": f"p{n}", "birth_date": f"1990-04-{1 + n % 28:02d}"} for n in range(56)]
    assert client.post("/batches", json={"people": people}).status_code == 202
    for _ in range(3):
        born = client.get("/readings", params={"birth_date": "1990-04-17"}).json()
        assert [row["name"] for row in born] == ["p16", "p44"]
        assert {row["sign"] for row in born} == {"aries"}
    statements = client.get("/ops/db").json()["statements"]
    [lookup] = [s for s in statements if "WHERE astro_readings.birth_date =" in s["sql"]]
    assert lookup["calls"] == 3
    advice = client.get("/ops/db/advice").json()
    [index] = [i for i in advice["indexes"] if i["table"] == "astro_readings"]
    assert index["ddl"] == "CREATE INDEX ix_astro_readings_birth_date ON astro_readings (birth_date)"
    assert index["verified"] is False  # SQLite cannot try a hypothetical index: PostgreSQL + hypopg can


def test_a_batch_refused_by_a_full_queue_leaves_no_reading_behind(client: httpx.Client) -> None:
    compute_batch.defer_many([([],)] * 1000)  # the queue's max_size: nobody works it in this test
    person = {"name": "Late", "birth_date": "1999-09-09"}
    response = client.post("/batches", json={"people": [person]})
    assert (response.status_code, response.json()["error_code"]) == (503, "queue_full")
    assert client.get("/readings", params={"birth_date": "1999-09-09"}).json() == []
