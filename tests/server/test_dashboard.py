"""The dashboard page, its snapshot (reader vs admin), and /docs without a CDN.

The browser side (the page driven in Chromium) lives in tests/browser/; here: what the server answers.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import pytest
from fastapi import FastAPI

from buttress.config import reset_settings
from buttress.container import get_container
from buttress.db import Database
from buttress.jobs import JobContext, job
from buttress.resilience import CircuitBreaker
from buttress.server._dashboard import CONTENT_SECURITY_POLICY
from buttress.server._snapshot import SHOWN, build_snapshot
from buttress.testing.jobs import job_worker

from .conftest import ADMIN_TOKEN, bearer, build, client_for, install_isolated

SECRET = "dash-secret-do-not-show-qwerty"
URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9][^\s"'<>)]*""")


@job(queue="dashboard-tests", name="dashboard_tests.echo")
def echo(ctx: JobContext, token: str) -> str:
    ctx.progress(0.5, "half way")
    return token


def external_urls(text: str) -> list[str]:
    """Every absolute or scheme-relative URL in ``text`` (SVG/XML namespace names are not loads)."""
    return [url for url in URL.findall(text) if not url.startswith(("http://www.w3.org/",))]


# -- the page and its files -------------------------------------------------------------------------------


async def test_the_page_and_its_files_come_from_the_server() -> None:
    built = build()
    async with client_for(built.app) as client:
        page = await client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'none'" in CONTENT_SECURITY_POLICY
        assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
        loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert loaded == ["data:,", "_assets/dashboard.css", "_assets/dashboard.js"]
        for name in ("dashboard.css", "dashboard.js"):
            asset = await client.get(f"/_assets/{name}")
            assert asset.status_code == 200, name
            assert external_urls(asset.text) == [], name
            again = await client.get(f"/_assets/{name}", headers={"If-None-Match": asset.headers["etag"]})
            assert again.status_code == 304
        assert external_urls(page.text) == []
        assert (await client.get("/_assets/dashboard.html")).status_code == 404
        assert (await client.get("/_assets/..%2Fpyproject.toml")).status_code == 404
        assert (await client.get("/_assets/swagger/core.py")).status_code == 404


async def test_the_page_follows_the_install_prefix() -> None:
    app = FastAPI()
    install_isolated(app)
    async with client_for(app) as client:
        assert (await client.get("/ops/dashboard")).status_code == 200
        assert (await client.get("/ops/_assets/dashboard.js")).status_code == 200
        assert (await client.get("/ops/dashboard/snapshot")).status_code == 200
        assert (await client.get("/dashboard")).status_code == 404


async def test_the_page_script_speaks_the_realtime_protocol() -> None:
    """What the browser tests exercise live, checked here too so a refactor cannot drop it silently."""
    built = build()
    async with client_for(built.app) as client:
        script = (await client.get("/_assets/dashboard.js")).text
    assert '"buttress.v1"' in script
    assert "bearer.${state.token}" in script
    assert "/realtime/ws?" in script
    assert 'split("\\n")' in script  # a frame may carry several messages
    assert 'send({ type: "pong" })' in script
    assert "last_id=" in script
    assert "sessionStorage" in script
    assert "innerHTML" not in script  # every value reaches the DOM as text


# -- /docs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_load_nothing_from_outside(path: str) -> None:
    built = build()
    async with client_for(built.app) as client:
        page = await client.get(path)
        assert page.status_code == 200
        assert external_urls(page.text) == []
        loaded = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        assert loaded, page.text
        for url in loaded:
            answer = await client.get(url)
            assert answer.status_code == 200, url


async def test_swagger_files_are_fastapi_offlines_not_copies() -> None:
    import fastapi_offline

    shipped = Path(fastapi_offline.__file__).parent / "static" / "swagger-ui-bundle.js"
    built = build()
    async with client_for(built.app) as client:
        served = await client.get("/_assets/swagger/swagger-ui-bundle.js")
    assert served.content == shipped.read_bytes()
    assert served.headers["content-type"].startswith("text/javascript")
    ours = Path(__file__).parents[2] / "src" / "buttress"
    assert not list(ours.rglob("swagger-ui*")), "Swagger UI must come from fastapi-offline, not a copy"


async def test_install_leaves_the_host_apps_docs_alone() -> None:
    app = FastAPI()
    install_isolated(app)
    async with client_for(app) as client:
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "cdn.jsdelivr.net" in docs.text  # the host's own page, as its FastAPI builds it
        assert (await client.get("/ops/docs")).status_code == 404


async def test_install_adds_offline_docs_to_a_host_without_any() -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    install_isolated(app)
    async with client_for(app) as client:
        docs = await client.get("/ops/docs")
        assert docs.status_code == 200
        assert external_urls(docs.text) == []
        assert "/ops/_assets/swagger/swagger-ui-bundle.js" in docs.text
        assert (await client.get("/docs")).status_code == 404


async def test_install_adds_no_docs_when_the_host_hides_its_openapi() -> None:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install_isolated(app)
    async with client_for(app) as client:
        assert (await client.get("/ops/docs")).status_code == 404


async def test_the_dashboard_stays_out_of_the_openapi_document() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    async with client_for(built.app) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if "dashboard" in path or "_assets" in path or "docs" in path]


# -- the snapshot -----------------------------------------------------------------------------------------


def _raise_secret() -> None:
    raise RuntimeError(f"payment refused for {SECRET}")


def test_the_snapshot_is_json_and_has_every_section() -> None:
    built = build()
    snapshot = build_snapshot(built.ops, admin=False)
    text = json.dumps(snapshot, allow_nan=False)
    assert json.loads(text) == snapshot
    for section in (
        "info",
        "health",
        "breakers",
        "limiters",
        "cache",
        "jobs",
        "storage",
        "db",
        "system",
        "errors",
    ):
        assert section in snapshot, section
    assert snapshot["admin"] is False
    assert snapshot["admin_actions"] is False
    assert snapshot["storage"] == {"available": False}  # no files here, and asking creates nothing
    assert not Path("files").exists()


def test_a_reader_sees_no_more_than_the_anonymous_errors_route() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    try:
        _raise_secret()
    except RuntimeError as exc:
        built.errors.record(exc)
    reader = build_snapshot(built.ops, admin=False)
    assert SECRET not in json.dumps(reader)
    group = reader["errors"]["groups"][0]
    assert group["type"] == "RuntimeError"
    assert group["message"] == group["traceback"] == ""
    assert reader["errors"]["details"] is False
    admin = build_snapshot(built.ops, admin=True)
    assert SECRET in admin["errors"]["groups"][0]["sample_message"]
    assert admin["admin_actions"] is True


async def test_the_snapshot_route_reads_the_token_like_the_json_routes() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    try:
        _raise_secret()
    except RuntimeError as exc:
        built.errors.record(exc)
    async with client_for(built.app) as client:
        anonymous = await client.get("/dashboard/snapshot")
        assert anonymous.status_code == 200
        assert anonymous.headers["cache-control"] == "no-store"
        assert anonymous.json()["admin"] is False
        assert SECRET not in anonymous.text
        admin = await client.get("/dashboard/snapshot", headers=bearer(ADMIN_TOKEN))
        assert admin.json()["admin"] is True
        assert SECRET in admin.text
        wrong = await client.get("/dashboard/snapshot", headers=bearer("not-the-token"))
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"


def test_breakers_and_limiters_appear() -> None:
    breaker = CircuitBreaker("dashboard-tests.upstream", consecutive_failures=1)
    breaker.isolate()
    snapshot = build_snapshot(build().ops, admin=False)
    rows = [row for row in snapshot["breakers"] if row["name"] == "dashboard-tests.upstream"]
    assert rows
    assert rows[0]["state"] != "closed"
    assert snapshot["limiters"]["total"] >= len(snapshot["limiters"]["rows"])
    assert len(snapshot["limiters"]["rows"]) <= SHOWN


def test_jobs_queues_and_details(tmp_path: Path) -> None:
    built = build(admin_token=ADMIN_TOKEN)
    with job_worker(tmp_path / "jobs.db", queues=["dashboard-tests"]) as worker:
        handle = echo.defer(token=SECRET)
        worker.drain()
        reader = build_snapshot(built.ops, admin=False)
        admin = build_snapshot(built.ops, admin=True)
    jobs = reader["jobs"]
    assert jobs["available"] is True
    assert "dashboard-tests" in jobs["queues"]
    assert jobs["queues"]["dashboard-tests"]["depth"] == 0
    ended = {row["id"]: row for row in jobs["ended"]}
    assert ended[handle.id]["status"] == "succeeded"
    assert ended[handle.id]["progress"] == 1.0
    assert ended[handle.id]["result"] is None
    assert SECRET not in json.dumps(reader)
    assert {row["id"]: row for row in admin["jobs"]["ended"]}[handle.id]["result"] == SECRET


def test_database_statements_appear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text

    monkeypatch.setenv("BUTTRESS_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("BUTTRESS_DB__SLOW_QUERY_MS", "0")  # every statement is "slow": the log fills
    reset_settings()
    db = get_container().resolve(Database)
    with db.session() as session:
        for _ in range(3):
            session.execute(text("SELECT 1 WHERE 1 = :one"), {"one": 1}).all()
    snapshot = build_snapshot(build().ops, admin=False)
    assert snapshot["db"]["available"] is True
    assert snapshot["db"]["slow"]
    assert snapshot["db"]["backend"] == "sqlite"
    assert snapshot["db"]["statements"]
    assert len(snapshot["db"]["statements"]) <= SHOWN
    assert len(snapshot["db"]["slow"]) == SHOWN  # the newest of the slow log (every statement here)


def test_a_failing_section_leaves_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that refuses connections blanks the jobs section only."""
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    reset_settings()
    snapshot = build_snapshot(build(database_url="postgresql://nobody@127.0.0.1:9/none").ops, admin=False)
    assert "error" in snapshot["jobs"]
    assert snapshot["system"]["thresholds"]
    assert snapshot["info"]["name"]
    json.dumps(snapshot, allow_nan=False)


def test_health_runs_in_the_background_not_per_snapshot() -> None:
    built = build()
    calls: list[float] = []

    @built.health.check("counted")
    def counted() -> bool:
        calls.append(time.monotonic())
        return True

    first = build_snapshot(built.ops, admin=False)
    assert first["health"]["status"] == "pass"
    for _ in range(5):
        build_snapshot(built.ops, admin=False)
    assert len(calls) == 1  # the clock has not moved: the report is reused
    built.clock.advance(10)
    build_snapshot(built.ops, admin=False)
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:  # the refresh runs on its own thread
        time.sleep(0.01)
    assert len(calls) == 2


def test_a_snapshot_is_fast(tmp_path: Path) -> None:
    """It runs every second in a worker thread while someone watches: typically well under 50 ms."""
    built = build()
    with job_worker(tmp_path / "jobs.db", queues=["dashboard-tests"]) as worker:
        for index in range(20):
            echo.defer(token=f"t{index}")
        worker.drain()
        build_snapshot(built.ops, admin=True)  # the first one waits for the health report
        took = []
        for _ in range(10):
            start = time.perf_counter()
            build_snapshot(built.ops, admin=True)
            took.append(time.perf_counter() - start)
    assert statistics.median(took) < 0.1, took  # generous for a loaded CI machine; measured ~ 5 ms here
