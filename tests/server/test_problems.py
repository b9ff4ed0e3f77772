"""Errors as RFC 9457 problem+json: buttress errors, unexpected exceptions, validation, HTTP errors."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse

from buttress.errors import ConflictError, NotFoundError, RateLimited
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from buttress.server import PROBLEM_CONTENT_TYPE, install

from .conftest import Built, build, client_for, make_settings

SECRET_DETAIL = "db password hunter2 at 10.1.2.3 in module internals"


class Order(BaseModel):
    quantity: int


def _with_routes(built: Built) -> Built:
    app = built.app

    @app.get("/orders/{order_id}")
    def get_order(order_id: int) -> dict[str, int]:
        if order_id == 0:
            raise NotFoundError("order", order_id, context={"table": "orders", "shard": 3})
        if order_id == 1:
            raise RuntimeError(SECRET_DETAIL)
        if order_id == 2:
            raise RateLimited("slow down", retry_after=2.4)
        return {"id": order_id}

    @app.post("/orders")
    def create_order(order: Order) -> dict[str, int]:
        return {"quantity": order.quantity}

    return built


async def test_a_buttress_error_keeps_its_code_and_status_and_hides_context_in_production() -> None:
    built = _with_routes(build())
    async with client_for(built.app) as client:
        response = await client.get("/orders/0", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.json() == {
        "type": "urn:buttress:error:not_found",
        "title": "Not found",
        "status": 404,
        "detail": "order 0 was not found",
        "instance": "/orders/0",
        "error_code": "not_found",
        "request_id": "req-42",
    }


async def test_development_mode_adds_context_and_traceback() -> None:
    built = _with_routes(build(expose_details=True))
    async with client_for(built.app) as client:
        problem = (await client.get("/orders/0")).json()
    assert problem["context"] == {
        "resource_type": "order",
        "resource_id": "0",
        "table": "orders",
        "shard": 3,
    }
    assert problem["exception"] == "NotFoundError: order 0 was not found"
    assert "Traceback (most recent call last)" in problem["traceback"]
    assert "get_order" in problem["traceback"]


async def test_retry_after_becomes_a_header() -> None:
    built = _with_routes(build())
    async with client_for(built.app) as client:
        response = await client.get("/orders/2")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["retry_after"] == 2.4


async def test_an_unexpected_error_is_a_500_problem_that_leaks_nothing_in_production(
    caplog: pytest.LogCaptureFixture,
) -> None:
    built = _with_routes(build())
    with caplog.at_level(logging.ERROR, logger="buttress.server"):
        async with client_for(built.app) as client:
            response = await client.get("/orders/1", headers={"X-Request-ID": "req-7"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["x-request-id"] == "req-7"
    problem = response.json()
    error_id = problem.pop("error_id")
    assert len(error_id) == 32
    assert problem == {
        "type": "urn:buttress:error:internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": f"An unexpected error occurred; quote error id {error_id} when reporting it.",
        "instance": "/orders/1",
        "error_code": "internal_error",
        "request_id": "req-7",
    }
    for leak in ("RuntimeError", "hunter2", "10.1.2.3", "Traceback", "get_order"):
        assert leak not in response.text
    # the id leads to the details: the log line and the aggregated group carry it
    [record] = [r for r in caplog.records if r.name == "buttress.server"]
    assert error_id in record.getMessage() or error_id in str(record.msg)
    assert record.exc_info is not None
    [group] = built.errors.groups()
    assert group.type == "RuntimeError"
    assert group.context["error_id"] == error_id
    assert group.context["route"] == "/orders/{order_id}"
    assert group.context["request_id"] == "req-7"


async def test_development_mode_shows_the_exception_of_a_500() -> None:
    built = _with_routes(build(expose_details=True))
    async with client_for(built.app) as client:
        problem = (await client.get("/orders/1")).json()
    assert problem["exception"] == f"RuntimeError: {SECRET_DETAIL}"
    assert "raise RuntimeError(SECRET_DETAIL)" in problem["traceback"]


async def test_repeated_failures_are_one_group_in_the_errors_endpoint() -> None:
    built = _with_routes(build())
    async with client_for(built.app) as client:
        for _ in range(3):
            await client.get("/orders/1")
        snapshot = (await client.get("/errors")).json()
    assert snapshot["total"] == 3
    assert snapshot["group_count"] == 1
    assert snapshot["groups"][0]["count"] == 3


async def test_validation_errors_are_422_problems_that_do_not_echo_the_input() -> None:
    built = _with_routes(build())
    async with client_for(built.app) as client:
        body = await client.post("/orders", json={"quantity": "sk_live_secret"})
        path = await client.get("/orders/not-a-number")
    assert body.status_code == 422
    assert body.headers["content-type"] == PROBLEM_CONTENT_TYPE
    problem = body.json()
    assert problem["error_code"] == "validation_failed"
    assert problem["detail"] == "The request is invalid (1 problem); see errors."
    assert problem["errors"] == [
        {
            "loc": ["body", "quantity"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]
    assert "sk_live_secret" not in body.text
    assert path.status_code == 422
    assert path.json()["errors"][0]["loc"] == ["path", "order_id"]


async def test_http_errors_of_the_ops_app_are_problems_too() -> None:
    built = build()
    async with client_for(built.app) as client:
        missing = await client.get("/no/such/page")
        wrong_method = await client.delete("/metrics")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert missing.json()["error_code"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error_code"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "GET"


async def test_bodies_that_cannot_be_parsed_are_problems_even_in_a_host_app() -> None:
    from .conftest import ADMIN_TOKEN, bearer

    app = FastAPI()  # no problem handlers of its own: the ops routes bring theirs
    install(
        app,
        make_settings(security={"admin_token": ADMIN_TOKEN}),
        health=HealthRegistry(),
        metrics=MetricsRegistry(),
        errors=ErrorAggregator(),
    )
    headers = {**bearer(ADMIN_TOKEN), "Content-Type": "application/json"}
    async with client_for(app) as client:
        not_json = await client.post("/ops/loggers/x", content=b"{not json", headers=headers)
        not_utf8 = await client.post("/ops/loggers/x", content=b"\xff\xfe{", headers=headers)
    assert not_json.status_code == 422
    assert not_json.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert not_json.json()["errors"][0]["type"] == "json_invalid"
    assert not_utf8.status_code == 400
    assert not_utf8.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert not_utf8.json()["error_code"] == "bad_request"


# --- install() in an app with handlers of its own ---------------------------------------------------------


def _user_app() -> tuple[FastAPI, ErrorAggregator]:
    app = FastAPI()
    errors = ErrorAggregator()
    install(
        app,
        make_settings(),
        health=HealthRegistry(),
        metrics=MetricsRegistry(),
        errors=errors,
    )
    return app, errors


async def test_installed_apps_turn_buttress_errors_into_problems_and_keep_their_other_handlers() -> None:
    app, _ = _user_app()

    @app.get("/thing")
    def thing() -> None:
        raise ConflictError("thing changed", context={"version": 3})

    @app.get("/typed/{n}")
    def typed(n: int) -> int:
        return n

    async with client_for(app) as client:
        conflict = await client.get("/thing")
        invalid = await client.get("/typed/x")
        ops_invalid = await client.get("/ops/errors?limit=0")
        missing = await client.get("/nope")
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert "context" not in conflict.json()
    # the app's own 422 and 404 stay FastAPI's; the ops routes answer problems whatever the app does
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/json"
    assert ops_invalid.status_code == 422
    assert ops_invalid.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert missing.headers["content-type"] == "application/json"


async def test_an_app_handler_for_buttress_errors_is_kept() -> None:
    app = FastAPI()

    @app.exception_handler(ConflictError)
    async def own(request: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"mine": True}, status_code=409)

    install(
        app, make_settings(), health=HealthRegistry(), metrics=MetricsRegistry(), errors=ErrorAggregator()
    )

    @app.get("/thing")
    def thing() -> None:
        raise ConflictError("changed")

    async with client_for(app) as client:
        response = await client.get("/thing")
    assert response.json() == {"mine": True}


async def test_an_app_handler_for_exception_is_left_to_handle_unexpected_errors() -> None:
    app = FastAPI()
    errors = ErrorAggregator()

    async def own(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("handled by the app", status_code=500)

    app.add_exception_handler(Exception, own)
    install(app, make_settings(), health=HealthRegistry(), metrics=MetricsRegistry(), errors=errors)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    async with client_for(app) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.text == "handled by the app"
    assert errors.total == 0


async def test_an_error_after_the_response_started_is_left_to_the_server() -> None:
    import httpx

    built = build()

    async def chunks():
        yield b"first"
        raise RuntimeError("mid-stream")

    @built.app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    transport = httpx.ASGITransport(app=built.app)  # raises what the app raises
    async with httpx.AsyncClient(transport=transport, base_url="http://ops.test") as client:
        with pytest.raises(RuntimeError, match="mid-stream"):
            await client.get("/stream")
    assert built.errors.total == 0  # not turned into a second, impossible response
    counter = built.metrics.get("buttress_server_requests_total")
    assert counter is not None
    assert counter.labels(method="GET", route="/stream", status_class="2xx").value == 1
