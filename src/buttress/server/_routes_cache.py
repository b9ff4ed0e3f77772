"""The cache on the ops server: its analytics, and warming on demand (admin).

``GET /cache/stats`` reports the process-wide cache (:func:`~buttress.cache.get_cache`): per namespace
hits, misses, hit rate, latency, size and evictions, the warmers, and recommendations. ``POST /cache/warm``
exists only when admin auth is configured, like every admin endpoint; it starts the warmers of every cache
in the process in the background and answers 202 at once (the events, the metrics and ``GET /cache/stats``
follow the run).
"""

# No `from __future__ import annotations`: FastAPI evaluates the endpoint annotations.

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, Field

from buttress.cache import CacheStatsReport, cache_stats, start_warming, warmer_caches
from buttress.errors import NotFoundError
from buttress.server._problems import problem_responses

__all__ = ["WarmRequest", "WarmStarted", "cache_admin_router", "cache_router"]

_log = logging.getLogger("buttress.server")


class WarmRequest(BaseModel):
    """Which warmers to run; all of them when ``names`` is left out."""

    names: list[str] | None = Field(default=None, examples=[["popular"]])


class WarmStarted(BaseModel):
    """The warmers started in the background, in the order they run."""

    started: list[str]


def cache_router(route_class: type) -> APIRouter:
    router = APIRouter(tags=["cache"], route_class=route_class)

    @router.get("/cache/stats", summary="Cache analytics", response_model=CacheStatsReport)
    def stats() -> CacheStatsReport:
        """Hits, misses, hit rate, latency, size and evictions per namespace; warmers; recommendations."""
        from buttress.cache import get_cache  # noqa: PLC0415 - built from settings on first use

        return cache_stats(get_cache())

    return router


def _warm_responses() -> dict[int | str, dict[str, Any]]:
    responses = problem_responses(400, 401, 404, 409, 422)
    responses[404]["description"] = "A warmer of that name is not registered (the problem lists them)."
    responses[409]["description"] = "A warm run is already in progress."
    return responses


def cache_admin_router(route_class: type, require_admin: Any) -> APIRouter:
    router = APIRouter(
        tags=["admin"],
        route_class=route_class,
        dependencies=[Depends(require_admin)],
        responses=_warm_responses(),
    )

    @router.post("/cache/warm", summary="Run cache warmers", status_code=202, response_model=WarmStarted)
    def warm(request: Annotated[WarmRequest | None, Body()] = None) -> WarmStarted:
        """Start the warmers (all, or ``names``) in the background; 202 with the names started."""
        names = None if request is None else request.names
        if names is None and not warmer_caches():
            raise NotFoundError(
                "cache warmer",
                "*",
                message="no cache warmers are registered in this process; register one with "
                "@cache.warmer('name') in a module the service imports",
            )
        started = start_warming(names)
        _log.warning("cache warmers started by admin: %s", ", ".join(started.names) or "none")
        return WarmStarted(started=started.names)

    return router
