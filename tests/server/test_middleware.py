"""The request middleware: request ids, route-template metrics, one bucket for unmatched paths."""

from __future__ import annotations

import random
import string
from typing import Any

import httpx
import pytest
import structlog
from fastapi import APIRouter, FastAPI
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from buttress.observe.errors import ErrorAggregator
from buttress.observe.metrics import MetricsRegistry
from buttress.server import UNMATCHED_ROUTE, OpsMiddleware, route_template

from .conftest import Built, build, client_for


def _series(built: Built, name: str) -> list[dict[str, Any]]:
    snapshot = built.metrics.snapshot()[name]
    return snapshot["series"]


def _requests(built: Built) -> dict[tuple[str, str, str], float]:
    return {
        (s["labels"]["method"], s["labels"]["route"], s["labels"]["status_class"]): s["value"]
        for s in _series(built, "buttress_server_requests_total")
    }


# --- request ids ----------------------------------------------------------------------------------------


async def test_a_request_id_is_generated_echoed_and_bound_into_the_logging_context() -> None:
    built = build()
    seen: list[dict[str, Any]] = []

    @built.app.get("/context")
    async def context() -> None:
        seen.append(structlog.contextvars.get_contextvars())

    async with client_for(built.app) as client:
        first = await client.get("/context")
        second = await client.get("/context")
    first_id, second_id = first.headers["x-request-id"], second.headers["x-request-id"]
    assert len(first_id) == 32
    assert first_id != second_id
    assert [c["request_id"] for c in seen] == [first_id, second_id]
    assert structlog.contextvars.get_contextvars() == {}  # nothing left bound after the request


async def test_a_sync_endpoint_in_the_threadpool_sees_the_request_id_too() -> None:
    built = build()
    seen: list[Any] = []

    @built.app.get("/sync")
    def sync() -> None:
        seen.append(structlog.contextvars.get_contextvars().get("request_id"))

    async with client_for(built.app) as client:
        response = await client.get("/sync", headers={"X-Request-ID": "abc-123"})
    assert seen == ["abc-123"]
    assert response.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("trace-7f3a:span_1/2+3=@x.y", True),
        ("x" * 128, True),
        ("x" * 129, False),  # too long for a log line
        ("has space", False),
        ("new\nline", False),
        ("", False),
    ],
)
async def test_only_sane_request_ids_are_taken_from_the_client(sent: str, kept: bool) -> None:
    built = build()
    async with client_for(built.app) as client:
        response = await client.get("/health/live", headers=[(b"x-request-id", sent.encode())])
    echoed = response.headers["x-request-id"]
    assert (echoed == sent) is kept
    if not kept:
        assert len(echoed) == 32


# --- metrics by route template ----------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_and_status_class() -> None:
    built = build()

    @built.app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    async with client_for(built.app) as client:
        for item_id in range(5):
            await client.get(f"/items/{item_id}")
        await client.get("/items/not-a-number")  # 422
        await client.post("/items/3")  # 405, matched the path
    assert _requests(built) == {
        ("GET", "/items/{item_id}", "2xx"): 5,
        ("GET", "/items/{item_id}", "4xx"): 1,
        ("POST", "/items/{item_id}", "4xx"): 1,
    }


async def test_two_hundred_random_paths_make_one_unmatched_series() -> None:
    built = build()
    rng = random.Random(1234)
    alphabet = string.ascii_letters + string.digits + "-_."
    async with client_for(built.app) as client:
        for _ in range(200):
            depth = rng.randint(1, 4)
            path = "/" + "/".join("".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(depth))
            response = await client.get(path)
            assert response.status_code == 404
    series = _series(built, "buttress_server_requests_total")
    assert [s["labels"] for s in series] == [
        {"method": "GET", "route": UNMATCHED_ROUTE, "status_class": "4xx"}
    ]
    assert series[0]["value"] == 200
    durations = _series(built, "buttress_server_request_duration_seconds")
    assert [s["labels"] for s in durations] == [{"method": "GET", "route": UNMATCHED_ROUTE}]
    assert durations[0]["count"] == 200


async def test_unknown_methods_share_one_label() -> None:
    built = build()
    async with client_for(built.app) as client:
        for method in ("BREW", "PROPFIND", "X-SCAN"):
            await client.request(method, "/health/live")
    assert {key[0] for key in _requests(built)} == {"OTHER"}


async def test_latency_is_recorded_per_template_with_the_registry_clock() -> None:
    built = build()

    @built.app.get("/slow/{n}")
    async def slow(n: int) -> None:
        built.clock.advance(0.25 * n)

    async with client_for(built.app) as client:
        await client.get("/slow/1")
        await client.get("/slow/3")
    [series] = _series(built, "buttress_server_request_duration_seconds")
    assert series["labels"] == {"method": "GET", "route": "/slow/{n}"}
    assert series["count"] == 2
    assert series["sum"] == pytest.approx(1.0)
    assert series["window"]["max"] == pytest.approx(0.75, rel=0.02)


async def test_status_classes() -> None:
    built = build()

    @built.app.get("/status/{code}")
    async def status(code: int) -> Any:
        from starlette.responses import Response

        return Response(status_code=code)

    async with client_for(built.app) as client:
        for code in (101, 204, 302, 418, 503):
            await client.get(f"/status/{code}")
    assert {key[2] for key in _requests(built)} == {"1xx", "2xx", "3xx", "4xx", "5xx"}


async def test_included_routers_and_mounts_are_labelled_with_their_full_template(tmp_path: Any) -> None:
    built = build()
    api = APIRouter(prefix="/api")
    inner = APIRouter(prefix="/v1")

    @inner.get("/users/{user_id}/orders/{order_id}")
    async def order(user_id: int, order_id: int) -> None:
        return None

    api.include_router(inner)
    built.app.include_router(api)
    sub = FastAPI()

    @sub.get("/things/{name}")
    async def thing(name: str) -> None:
        return None

    built.app.mount("/sub", sub)
    (tmp_path / "a.txt").write_text("a")
    built.app.router.routes.append(Mount("/static", StaticFiles(directory=tmp_path)))
    async with client_for(built.app) as client:
        assert (await client.get("/api/v1/users/1/orders/2")).status_code == 200
        assert (await client.get("/api/v1/users/7/orders/9")).status_code == 200
        assert (await client.get("/sub/things/x")).status_code == 200
        assert (await client.get("/static/a.txt")).status_code == 200
    routes = {key[1] for key in _requests(built)}
    assert routes == {
        "/api/v1/users/{user_id}/orders/{order_id}",
        "/sub/things/{name}",
        "/static/{path:path}",
    }


async def test_ops_routes_under_a_prefix_carry_it() -> None:
    from fastapi import FastAPI

    from buttress.observe.health import HealthRegistry
    from buttress.server import install

    from .conftest import make_settings

    app = FastAPI()
    metrics = MetricsRegistry()
    install(app, make_settings(), prefix="/_ops", health=HealthRegistry(), metrics=metrics)
    async with client_for(app) as client:
        assert (await client.get("/_ops/health/live")).status_code == 200
        assert (await client.get("/_ops/health/some-group")).status_code == 404
    series = metrics.snapshot()["buttress_server_requests_total"]["series"]
    assert {s["labels"]["route"] for s in series} == {"/_ops/health/live", "/_ops/health/{group}"}


def test_route_template_without_a_route_is_unmatched() -> None:
    assert route_template({"type": "http"}) == UNMATCHED_ROUTE
    assert route_template({"type": "http", "route": object()}) == UNMATCHED_ROUTE


# --- other scopes ---------------------------------------------------------------------------------------


async def test_non_http_scopes_pass_through_untouched() -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    metrics = MetricsRegistry()
    middleware = OpsMiddleware(inner, metrics=metrics, errors=ErrorAggregator(), expose_details=False)

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: Any) -> None:
        return None

    await middleware({"type": "websocket"}, receive, send)
    await middleware({"type": "lifespan"}, receive, send)
    assert seen == ["websocket", "lifespan"]
    assert metrics.snapshot()["buttress_server_requests_total"]["series"] == []


async def test_the_middleware_works_around_a_plain_asgi_app() -> None:
    async def plain(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-own", b"1")]})
        await send({"type": "http.response.body", "body": b"ok"})

    metrics = MetricsRegistry()
    app = OpsMiddleware(plain, metrics=metrics, errors=ErrorAggregator(), expose_details=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/anything")
    assert response.headers["x-own"] == "1"
    assert "x-request-id" in response.headers
    [series] = metrics.snapshot()["buttress_server_requests_total"]["series"]
    assert series["labels"]["route"] == UNMATCHED_ROUTE


async def test_a_plain_starlette_mount_is_labelled_by_its_path(tmp_path: Any) -> None:
    from starlette.applications import Starlette

    (tmp_path / "a.txt").write_text("a")
    inner = Starlette(routes=[Mount("/files", StaticFiles(directory=tmp_path))])
    metrics = MetricsRegistry()
    app = OpsMiddleware(inner, metrics=metrics, errors=ErrorAggregator(), expose_details=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/files/a.txt")).status_code == 200
        assert (await client.get("/elsewhere")).status_code == 404
    series = metrics.snapshot()["buttress_server_requests_total"]["series"]
    assert {s["labels"]["route"] for s in series} == {"/files/{path:path}", UNMATCHED_ROUTE}
