"""The OpenAPI document is complete and true: checked by hand, then by schemathesis against the app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection

from buttress.clock import FakeClock
from buttress.config import Settings
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import CheckResult, HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from buttress.observe.profiler import Profiler
from buttress.observe.system import SystemSampler
from buttress.server import PROBLEM_CONTENT_TYPE, create_app

from .conftest import ADMIN_TOKEN, build, client_for

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _populated_app(*, admin: bool) -> Any:
    """An ops app with data behind every endpoint: failing and warning checks, errors, timings, samples."""
    health = HealthRegistry()
    # A failing critical check would make readiness a 503, which schemathesis counts as a server error;
    # the 503 documents are checked against the schema in test_a_503_health_document_matches_the_schema.
    health.add("database", lambda: True)
    health.add("queue", lambda: False, critical=False)  # optional and failing: warn
    health.add("cache", lambda: CheckResult("warn", "slow", 120.5, "ms"), critical=False)
    health.add("loop", lambda: True, groups=("liveness", "deploy"))
    metrics = MetricsRegistry(clock=FakeClock())
    metrics.histogram("buttress_test_latency_seconds", "Latency.", labels=("op",)).labels(op="a").observe(0.1)
    metrics.gauge("buttress_test_level_percent", "Level.").set(float("inf"))
    errors = ErrorAggregator()
    try:
        raise ValueError("order 7 is invalid")  # noqa: TRY301
    except ValueError as exc:
        errors.record(exc, context={"order": 7})
    profiler = Profiler()
    profiler.record("orders.load", 0.2, 0.1)
    sampler = SystemSampler(3600.0)
    sampler.run_once()
    security = {"admin_token": ADMIN_TOKEN} if admin else {}
    return create_app(
        Settings(_env_file=None, security=security, server={"expose_details": False}),
        health=health,
        metrics=metrics,
        errors=errors,
        profiler=profiler,
        sampler=sampler,
    )


ADMIN_APP = _populated_app(admin=True)
PLAIN_APP = _populated_app(admin=False)
ADMIN_SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", ADMIN_APP)
PLAIN_SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", PLAIN_APP)
BOUNDED = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@ADMIN_SCHEMA.parametrize()
@BOUNDED
def test_schemathesis_with_admin_auth(case: Any) -> None:
    """No 5xx, and every status, content type, header and body as documented.

    All checks but the negative-data one: this call puts back the Authorization header that a negative
    case may have removed, so an accepted request there is the test's doing (the run without admin auth
    below keeps that check).
    """
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, excluded_checks=[negative_data_rejection]
    )


@PLAIN_SCHEMA.parametrize()
@BOUNDED
def test_schemathesis_without_admin_auth(case: Any) -> None:
    case.call_and_validate()


# --- the document itself --------------------------------------------------------------------------------


async def _schema(admin: bool = True) -> dict[str, Any]:
    built = build(admin_token=ADMIN_TOKEN if admin else None)
    async with client_for(built.app) as client:
        document: dict[str, Any] = (await client.get("/openapi.json")).json()
    return document


async def test_every_operation_documents_its_errors_as_problems() -> None:
    document = await _schema()
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's 422 shape is replaced
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and not path.startswith("/health"):
                    assert response["content"] == {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}, (
                        method,
                        path,
                        status,
                    )
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in operation["responses"], (method, path)


async def test_health_operations_document_health_json_for_200_and_503() -> None:
    document = await _schema()
    for path in ("/health", "/health/live", "/health/ready", "/health/{group}"):
        responses = document["paths"][path]["get"]["responses"]
        for status in ("200", "503"):
            content = responses[status]["content"]
            assert list(content) == ["application/health+json"], (path, status)
            assert content["application/health+json"]["schema"] == {
                "$ref": "#/components/schemas/HealthDocument"
            }
    group = document["paths"]["/health/{group}"]["get"]["responses"]
    assert group["404"]["content"][PROBLEM_CONTENT_TYPE]["schema"] == PROBLEM_REF


async def test_problem_schema_is_in_the_components() -> None:
    document = await _schema(admin=False)
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "error_code"}
    field_problem = {"$ref": "#/components/schemas/FieldProblem"}
    assert problem["properties"]["errors"]["anyOf"][0]["items"] == field_problem
    assert "FieldProblem" in document["components"]["schemas"]


async def test_metrics_is_documented_as_text() -> None:
    document = await _schema()
    content = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert content == {"text/plain": {"schema": {"type": "string"}}}


@pytest.mark.parametrize(
    "path",
    ["/health", "/metrics", "/stats", "/errors", "/system", "/profiler", "/config", "/loggers", "/info"],
)
async def test_every_read_endpoint_answers_what_it_documents(path: str) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=ADMIN_APP), base_url="http://ops.test"
    ) as client:
        response = await client.get(path)
    assert response.status_code in (200, 503)


async def test_a_503_health_document_matches_the_schema() -> None:
    from buttress.server._models import HealthDocument

    health = HealthRegistry()
    health.add("database", lambda: False, component_id="db-1", observed_unit="ms")
    built = build(health=health)
    async with client_for(built.app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    document = HealthDocument.model_validate(response.json())
    assert document.status == "fail"
    assert document.checks["database"][0].component_id == "db-1"
