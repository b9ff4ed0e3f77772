"""Admin endpoints: switch the profiler and change logger levels at run time.

They are only added to the app when admin auth is configured (``BUTTRESS_SECURITY__ADMIN_TOKEN`` or
``BUTTRESS_SERVER__JWT_KEY``): an endpoint that does not exist cannot be misused, and it is absent from
the OpenAPI document too, so nobody is told it is there.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the endpoint annotations, which
# name dependencies local to the router builders, and string annotations cannot see those.

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from buttress._bearer import AdminAuth, AdminIdentity
from buttress.server._models import LevelChange, LoggerLevel, ProfilerState
from buttress.server._ops import Ops
from buttress.server._problems import problem_responses
from buttress.server._routes_observe import logger_level

__all__ = ["admin_dependencies", "admin_router"]

_log = logging.getLogger("buttress.server")


def admin_dependencies(auth: AdminAuth) -> tuple[Any, Any]:
    """``require_admin`` (401 without valid credentials) and ``optional_admin`` (None when none sent).

    Without admin auth configured, ``optional_admin`` reads no header at all, so the OpenAPI document
    does not advertise a security scheme nobody can satisfy.
    """
    if not auth.configured:

        def no_admin() -> None:
            return None

        return no_admin, no_admin
    bearer = HTTPBearer(
        auto_error=False,
        scheme_name="AdminBearer",
        description="security.admin_token, or a JWT signed with server.jwt_key.",
    )
    credentials_type = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

    def require_admin(credentials: credentials_type) -> AdminIdentity:
        return auth.verify(credentials.credentials if credentials is not None else None)

    def optional_admin(credentials: credentials_type) -> AdminIdentity | None:
        if credentials is None:
            return None
        return auth.verify(credentials.credentials)

    return require_admin, optional_admin


def admin_router(ops: Ops, route_class: type, require_admin: Any) -> APIRouter:
    router = APIRouter(
        tags=["admin"],
        route_class=route_class,
        dependencies=[Depends(require_admin)],
        responses=problem_responses(401),
    )

    def switched(action: str) -> ProfilerState:
        _log.info("profiler %s by admin", action)
        return ProfilerState(enabled=ops.profiler.enabled, names=len(ops.profiler.report()))

    @router.post("/profiler/start", summary="Start profiling", response_model=ProfilerState)
    def start() -> ProfilerState:
        """Record calls to profiled functions from now on."""
        ops.profiler.start()
        return switched("started")

    @router.post("/profiler/stop", summary="Stop profiling", response_model=ProfilerState)
    def stop() -> ProfilerState:
        """Stop recording; what was collected stays readable until a reset."""
        ops.profiler.stop()
        return switched("stopped")

    @router.post("/profiler/reset", summary="Reset the profiler", response_model=ProfilerState)
    def reset() -> ProfilerState:
        """Forget every collected timing; recording stays on or off as it was."""
        ops.profiler.reset()
        return switched("reset")

    @router.post(
        "/loggers/{name}",
        summary="Set a logger's level",
        response_model=LoggerLevel,
        responses=problem_responses(400, 422),
    )
    def set_level(
        name: Annotated[
            str, Path(description="Logger name, e.g. httpx or buttress.server; root for the root.")
        ],
        change: LevelChange,
    ) -> LoggerLevel:
        """Change a logger's level at run time (until the process restarts); NOTSET inherits again."""
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        logger.setLevel(change.level)
        _log.info("logger %s level set to %s by admin", name, change.level)
        return logger_level(name, logger)

    return router
