"""Breakers and limiters on the ops server: list them; reset or isolate a breaker (admin).

``GET /breakers`` and ``GET /limiters`` describe every breaker and limiter alive in this process (with a
Redis store, the state they show is the shared one). ``POST /breakers/{key}/reset`` and ``/isolate``
exist only when admin auth is configured, like every admin endpoint.
"""

# No `from __future__ import annotations`: FastAPI evaluates the endpoint annotations.

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from buttress.errors import NotFoundError, ValidationError
from buttress.resilience import BreakerSnapshot, CircuitBreaker, LimiterSnapshot, live_breakers, live_limiters
from buttress.server._problems import problem_responses

__all__ = ["MAX_LIMITER_ROWS", "resilience_admin_router", "resilience_router"]

_log = logging.getLogger("buttress.server")

MAX_LIMITER_ROWS = 1000
"""At most this many limiter keys are listed: a limiter keyed by user id could have millions."""

_Key = Annotated[str, Path(description="The breaker's name, e.g. api.example.com.")]


def resilience_router(route_class: type) -> APIRouter:
    router = APIRouter(tags=["resilience"], route_class=route_class)

    @router.get("/breakers", summary="Circuit breakers", response_model=list[BreakerSnapshot])
    def breakers() -> list[BreakerSnapshot]:
        """Every circuit breaker in this process: state, failure rate, calls, retry_after."""
        rows: list[BreakerSnapshot] = []
        for breaker in live_breakers():
            try:
                rows.append(breaker.snapshot())
            except ValidationError:  # a shared breaker not yet named by a decorator: it has no state yet
                continue
        return sorted(rows, key=lambda row: row.name)

    @router.get("/limiters", summary="Rate limiters", response_model=list[LimiterSnapshot])
    def limiters() -> list[LimiterSnapshot]:
        """Every rate limiter key this process has used: rate, burst, available tokens, rejections."""
        rows: list[LimiterSnapshot] = []
        for limiter in sorted(live_limiters(), key=lambda limiter: limiter.name):
            for key in sorted(limiter.keys()):
                if len(rows) >= MAX_LIMITER_ROWS:
                    return rows
                rows.append(limiter.snapshot(key))
        return rows

    return router


def _named(key: str) -> list[CircuitBreaker]:
    found = [breaker for breaker in live_breakers() if breaker.name == key]
    if not found:
        raise NotFoundError(
            "circuit breaker",
            key,
            message=f"no circuit breaker named {key!r} in this process; GET /breakers lists them",
        )
    return found


def resilience_admin_router(route_class: type, require_admin: Any) -> APIRouter:
    router = APIRouter(
        tags=["admin"],
        route_class=route_class,
        dependencies=[Depends(require_admin)],
        responses=problem_responses(401, 404, 422),
    )

    @router.post("/breakers/{key}/reset", summary="Close a breaker", response_model=BreakerSnapshot)
    def reset(key: _Key) -> BreakerSnapshot:
        """Close the breaker and clear its window (ends an isolation too)."""
        found = _named(key)
        for breaker in found:
            breaker.reset()
        _log.warning("breaker %s reset by admin", key)
        return found[0].snapshot()

    @router.post("/breakers/{key}/isolate", summary="Force a breaker open", response_model=BreakerSnapshot)
    def isolate(key: _Key) -> BreakerSnapshot:
        """Hold the breaker open, rejecting every call, until it is reset."""
        found = _named(key)
        for breaker in found:
            breaker.isolate()
        _log.warning("breaker %s isolated by admin", key)
        return found[0].snapshot()

    return router
