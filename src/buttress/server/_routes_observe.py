"""Read-only ops endpoints: metrics, stats, errors, system, profiler, config, loggers and info.

They only read snapshots the observe modules already keep, so they are cheap and safe to scrape. The
one thing that can be sensitive, the details of aggregated errors (messages, tracebacks, context), is
shown only in development (``expose_details``) or to a caller with valid admin credentials; anonymous
readers get each group's type, origin, counts and times. Both views are scrubbed of secrets when the
errors are recorded (:mod:`buttress.observe.secrets`).
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the endpoint annotations, which
# name dependencies local to the router builders, and string annotations cannot see those.

import logging
import math
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from buttress._bearer import AdminIdentity
from buttress.config import describe_settings
from buttress.server._models import (
    ConfigEntry,
    ErrorsSnapshot,
    InfoResponse,
    LoggerLevel,
    LoggersResponse,
    MetricFamilySnapshot,
    ProfilerSnapshot,
    SystemSnapshot,
)
from buttress.server._ops import Ops
from buttress.server._problems import problem_responses

__all__ = ["LEVELS", "logger_level", "observe_router"]

LEVELS = ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"]

_NO_DETAILS = {"message": "", "sample_message": "", "traceback": ""}

Limit = Annotated[int | None, Query(ge=1, le=10_000, description="Keep only the first N entries.")]


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: a gauge set to one is reported as null instead of failing the page."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def logger_level(name: str, logger: logging.Logger) -> LoggerLevel:
    return LoggerLevel(
        name=name,
        level=logging.getLevelName(logger.level),
        effective_level=logging.getLevelName(logger.getEffectiveLevel()),
    )


def observe_router(ops: Ops, route_class: type, optional_admin: Any) -> APIRouter:
    router = APIRouter(tags=["observe"], route_class=route_class)

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "OK"}},
    )
    def metrics() -> Response:
        """Every metric in the Prometheus text format, for a Prometheus scrape."""
        return Response(ops.metrics.render_prometheus(), media_type=ops.metrics.content_type)

    @router.get(
        "/stats",
        summary="Metrics as JSON",
        response_model=dict[str, MetricFamilySnapshot],
        response_model_exclude_unset=True,  # counters have no window, histograms no value
    )
    def stats() -> Any:
        """Every metric with its series; histograms add count, sum and p50/p95/p99/max of a sliding window."""
        return _finite(ops.metrics.snapshot())

    admin_problems = problem_responses(401) if ops.auth.configured else {}

    @router.get(
        "/errors",
        summary="Aggregated errors",
        response_model=ErrorsSnapshot,
        responses={**admin_problems, **problem_responses(422)},
        # Admin credentials are optional here: {} is the "no authentication" alternative.
        openapi_extra={"security": [{}]} if ops.auth.configured else None,
    )
    def errors(
        identity: Annotated[AdminIdentity | None, Depends(optional_admin)], limit: Limit = None
    ) -> Any:
        """Unexpected errors grouped by type, origin and normalised message, most frequent first.

        Messages, tracebacks and context are included in development or with admin credentials;
        anonymous readers get type, origin, counts and times only (the details are empty), since an
        exception message can carry anything. The error id in the response and the log line leads to
        them.
        """
        snapshot = ops.errors.snapshot(limit)
        details = ops.expose_details or identity is not None
        if not details:
            for group in snapshot["groups"]:
                group.update(_NO_DETAILS)
                group["context"] = {}
        return {**snapshot, "details": details}

    @router.get("/system", summary="System resources", response_model=SystemSnapshot)
    def system() -> Any:
        """The latest CPU, memory, disk and file descriptor reading, and the thresholds applied to it."""
        return _finite(ops.sampler.snapshot())

    @router.get(
        "/profiler",
        summary="Profiler report",
        response_model=ProfilerSnapshot,
        responses=problem_responses(422),
    )
    def profiler(limit: Limit = None) -> Any:
        """Profiled functions ranked by total time and by p99, since the last reset."""
        return _finite(ops.profiler.snapshot(limit))

    @router.get("/config", summary="Effective configuration", response_model=list[ConfigEntry])
    def config() -> Any:
        """Every setting with its value and source; secrets and URL passwords are masked."""
        return [asdict(entry) for entry in describe_settings(ops.settings)]

    @router.get("/loggers", summary="Logger levels", response_model=LoggersResponse)
    def loggers() -> LoggersResponse:
        """The root logger and every named logger created so far, with configured and effective levels."""
        manager = logging.root.manager
        named = sorted(
            (item for item in manager.loggerDict.items() if isinstance(item[1], logging.Logger)),
            key=lambda item: item[0],
        )
        rows = [logger_level("root", logging.getLogger())]
        rows += [logger_level(name, logger) for name, logger in named if isinstance(logger, logging.Logger)]
        return LoggersResponse(levels=LEVELS, loggers=rows)

    @router.get("/info", summary="Service information", response_model=InfoResponse)
    def info() -> Any:
        """Service name, environment, buttress and Python versions, host, start time and uptime."""
        return ops.info()

    return router
