"""Health endpoints: ``/health``, ``/health/live``, ``/health/ready`` and ``/health/{group}``.

Each answers an ``application/health+json`` document, 200 on pass or warn and 503 on fail, so load
balancers and Kubernetes probes can read the status code alone. ``/health/live`` runs only the
``liveness`` group, which should check nothing outside the process: a database outage must make a pod
unready, not get it restarted.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the endpoint annotations, which
# name dependencies local to the router builders, and string annotations cannot see those.

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter
from starlette.responses import JSONResponse

from buttress.errors import NotFoundError, ValidationError
from buttress.observe.health import HEALTH_CONTENT_TYPE, HealthReport
from buttress.server._models import HealthDocument
from buttress.server._ops import Ops
from buttress.server._problems import problem_responses

__all__ = ["HealthResponse", "health_router"]

F = TypeVar("F", bound=Callable[..., Any])


class HealthResponse(JSONResponse):
    """A health+json response; never cached, a stale "pass" is worse than none."""

    media_type = HEALTH_CONTENT_TYPE


def _respond(report: HealthReport) -> HealthResponse:
    return HealthResponse(
        report.to_dict(), status_code=report.http_status, headers={"Cache-Control": "no-store"}
    )


def health_router(ops: Ops, route_class: type) -> APIRouter:
    router = APIRouter(tags=["health"], route_class=route_class)

    def get(path: str, summary: str, failed: str, *problems: int) -> Callable[[F], F]:
        responses = {503: {"model": HealthDocument, "description": failed}, **problem_responses(*problems)}
        return router.get(
            path,
            summary=summary,
            response_model=HealthDocument,
            response_class=HealthResponse,
            responses=responses,
        )

    @get("/health", "Every health check", "A critical check failed.")
    async def health() -> HealthResponse:
        """Run every registered check concurrently, each under its own timeout."""
        return _respond(await ops.health.run())

    @get("/health/live", "Liveness probe", "A critical liveness check failed: restart the process.")
    async def live() -> HealthResponse:
        """The ``liveness`` group only: can this process answer at all? Checks no dependencies."""
        return _respond(await ops.health.run("liveness"))

    @get("/health/ready", "Readiness probe", "A critical dependency failed: stop sending traffic here.")
    async def ready() -> HealthResponse:
        """The ``readiness`` group: can this process serve traffic, are its dependencies reachable?"""
        return _respond(await ops.health.run("readiness"))

    @get("/health/{group}", "One health check group", "A critical check of the group failed.", 404, 422)
    async def group(group: str) -> HealthResponse:
        """A standard group (liveness, readiness, startup) or one a check declared; else 404."""
        try:
            report = await ops.health.run(group)
        except ValidationError:
            raise NotFoundError(
                "health check group",
                group,
                message=f"no health check declares the group {group!r}; known groups: "
                + ", ".join(sorted(ops.health.groups)),
            ) from None
        return _respond(report)

    return router
