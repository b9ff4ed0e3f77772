"""/breakers and /limiters, the admin reset and isolate, and `buttress breakers` against a live server."""

from __future__ import annotations

import contextlib
import io
import json

import httpx
import pytest
from rich.console import Console

from buttress.config import reset_settings
from buttress.resilience import CircuitBreaker, RateLimiter
from buttress.resilience.cli import breakers_command, default_ops_url

from .conftest import ADMIN_TOKEN, bearer, build, client_for
from .test_live_server import serving


def _trip(breaker: CircuitBreaker) -> None:
    for _ in range(5):
        with contextlib.suppress(ConnectionError):
            breaker.call(_fail)


def _fail() -> None:
    raise ConnectionError("down")


async def test_breakers_lists_every_live_breaker_with_its_state() -> None:
    built = build()
    healthy = CircuitBreaker("ep-healthy.example.com", clock=built.clock)
    failing = CircuitBreaker("ep-failing.example.com", clock=built.clock)
    _trip(failing)
    healthy.call(lambda: None)
    async with client_for(built.app) as client:
        answer = await client.get("/breakers")
    assert answer.status_code == 200
    rows = {row["name"]: row for row in answer.json()}
    assert rows["ep-failing.example.com"]["state"] == "open"
    assert rows["ep-failing.example.com"]["retry_after"] == 30.0
    assert rows["ep-healthy.example.com"]["state"] == "closed"
    assert rows["ep-healthy.example.com"]["calls"] >= 0
    assert set(rows["ep-healthy.example.com"]) >= {
        "failure_rate",
        "calls",
        "failures",
        "store",
        "open_duration",
    }


async def test_limiters_lists_each_key() -> None:
    built = build()
    limiter = RateLimiter("60/minute", burst=10, name="ep-limits", clock=built.clock)
    for _ in range(4):
        limiter.try_acquire("a.example.com")
    limiter.try_acquire("b.example.com")
    async with client_for(built.app) as client:
        rows = [row for row in (await client.get("/limiters")).json() if row["name"] == "ep-limits"]
    assert [(row["key"], row["available"], row["burst"]) for row in rows] == [
        ("a.example.com", 6.0, 10),
        ("b.example.com", 9.0, 10),
    ]
    assert rows[0]["rate"]


async def test_admin_resets_and_isolates_a_breaker() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    breaker = CircuitBreaker("ep-admin.example.com", clock=built.clock)
    _trip(breaker)
    async with client_for(built.app) as client:
        assert (await client.post("/breakers/ep-admin.example.com/reset")).status_code == 401
        reset = await client.post("/breakers/ep-admin.example.com/reset", headers=bearer(ADMIN_TOKEN))
        assert reset.status_code == 200
        assert reset.json()["state"] == "closed"
        assert breaker.state == "closed"
        isolated = await client.post("/breakers/ep-admin.example.com/isolate", headers=bearer(ADMIN_TOKEN))
        assert isolated.json()["state"] == "forced_open"
        missing = await client.post("/breakers/nope/reset", headers=bearer(ADMIN_TOKEN))
        assert missing.status_code == 404
        assert "GET /breakers lists them" in missing.json()["detail"]


async def test_without_admin_auth_the_admin_routes_do_not_exist() -> None:
    built = build()
    CircuitBreaker("ep-noadmin", clock=built.clock)
    async with client_for(built.app) as client:
        assert (await client.post("/breakers/ep-noadmin/reset")).status_code in (404, 405)
        spec = (await client.get("/openapi.json")).json()
    assert "/breakers" in spec["paths"]
    assert "/breakers/{key}/reset" not in spec["paths"]


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=160, color_system=None), out


def test_buttress_breakers_prints_the_table_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    built = build(admin_token=ADMIN_TOKEN)
    breaker = CircuitBreaker("cli-breaker.example.com", clock=built.clock)
    _trip(breaker)
    monkeypatch.setenv("BUTTRESS_SECURITY__ADMIN_TOKEN", ADMIN_TOKEN)  # the command reads it from settings
    reset_settings()
    try:
        with serving(built.app) as base:
            console, out = _console()
            assert breakers_command(url=base, console=console) == 0
            table = out.getvalue()
            assert "cli-breaker.example.com" in table
            assert "open" in table
            assert "30.0 s" in table
            console, out = _console()
            code = breakers_command(url=base, reset="cli-breaker.example.com", as_json=True, console=console)
            assert code == 0
            text = out.getvalue()
            assert "reset done" in text
            rows = json.loads(text[text.index("[") :])
            assert any(row["name"] == "cli-breaker.example.com" and row["state"] == "closed" for row in rows)
            console, out = _console()
            assert breakers_command(url=base, isolate="missing-one", console=console) == 1
            assert "HTTP 404" in out.getvalue()
    finally:
        monkeypatch.delenv("BUTTRESS_SECURITY__ADMIN_TOKEN")
        reset_settings()


def test_buttress_breakers_explains_an_unreachable_server() -> None:
    console, out = _console()
    assert breakers_command(url="http://127.0.0.1:9/ops", console=console) == 1
    assert "cannot reach the ops server" in out.getvalue()
    assert default_ops_url() == "http://127.0.0.1:8765"  # buttress serve: the routes at its root


def test_buttress_breakers_reports_an_error_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="not json")

    console, out = _console()
    code = breakers_command(url="http://x/ops", console=console, transport=httpx.MockTransport(handler))
    assert code == 1
    assert "HTTP 500" in out.getvalue()


async def test_an_unnamed_shared_breaker_does_not_break_the_listing(redis_url: str) -> None:
    """A Redis-backed breaker that has decorated nothing has no name and no state yet: it is left out."""
    from buttress.observe.metrics import MetricsRegistry
    from buttress.resilience import RedisState

    state = RedisState(redis_url, prefix="unnamed-listing", metrics=MetricsRegistry())
    try:
        unnamed = CircuitBreaker(store=state, metrics=MetricsRegistry())
        named = CircuitBreaker("listed-next-to-it.example.com")
        built = build()
        async with client_for(built.app) as client:
            answer = await client.get("/breakers")
        assert answer.status_code == 200
        names = [row["name"] for row in answer.json()]
        assert "listed-next-to-it.example.com" in names
        assert unnamed.name not in names
        assert named.name in names
    finally:
        state.close()
