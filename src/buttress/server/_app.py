"""Building the ops app (:func:`create_app`) and adding buttress to an existing one (:func:`install`).

:func:`install` is the primitive: it wraps the app's lifespan (the app's own startup and shutdown still
run, inside buttress's), adds the request middleware, the ops routes under a prefix, a problem+json
handler for :class:`~buttress.errors.ButtressError`, and the problem schemas to the OpenAPI document.
:func:`create_app` is a fresh FastAPI app with :func:`install` at the root and problem+json for every
error, Starlette's 404/405 and validation errors included.

The ops routes use their own route class, which turns validation errors and buttress errors into
problem+json whatever handlers the host app has registered, so their documented responses hold there too.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from buttress._bearer import AdminAuth
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.composition import db_installed
from buttress.config import Settings, get_settings
from buttress.errors import ButtressError, ConflictError, ValidationError
from buttress.observe.errors import ErrorAggregator, get_error_aggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry, get_metrics
from buttress.observe.profiler import Profiler, get_profiler
from buttress.observe.secrets import register_secrets
from buttress.observe.system import SystemSampler
from buttress.server._dashboard import dashboard_router
from buttress.server._docs_assets import ASSETS, add_offline_docs, assets_router
from buttress.server._middleware import OpsMiddleware
from buttress.server._ops import Ops, buttress_version, default_sampler, ops_health_registry
from buttress.server._problems import (
    FieldProblem,
    Problem,
    error_problem,
    http_problem,
    validation_problem,
)
from buttress.server._routes_admin import admin_dependencies, admin_router
from buttress.server._routes_cache import cache_admin_router, cache_router
from buttress.server._routes_health import health_router
from buttress.server._routes_observe import observe_router
from buttress.server._routes_realtime import realtime_routes
from buttress.server._routes_resilience import resilience_admin_router, resilience_router
from buttress.server._snapshot import build_snapshot

__all__ = ["create_app", "install"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _problem_route_class(expose_details: bool) -> type[APIRoute]:
    class ProblemRoute(APIRoute):
        """An APIRoute whose errors are problem+json regardless of the host app's handlers."""

        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()

            async def problem_handler(request: Request) -> Response:
                try:
                    return await handler(request)
                except RequestValidationError as exc:
                    return validation_problem(request, exc.errors())
                except ButtressError as exc:
                    return error_problem(request, exc, expose_details=expose_details)
                except StarletteHTTPException as exc:  # a body that is not JSON: 400
                    return http_problem(request, exc)

            return problem_handler

    return ProblemRoute


def _check_prefix(prefix: str) -> str:
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValidationError(
            f"prefix must be empty or start with '/' and not end with one, e.g. '/ops'; got {prefix!r}",
            field="prefix",
        )
    return prefix


def _add_problem_schemas(app: FastAPI) -> None:
    """Put Problem (referenced by the ops routes' error responses) into the OpenAPI components."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        template = "#/components/schemas/{model}"
        for model in (Problem, FieldProblem):
            document = model.model_json_schema(ref_template=template)
            components.update(document.pop("$defs", {}))
            components[model.__name__] = document
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(
    app: FastAPI,
    settings: Settings | None = None,
    *,
    prefix: str = "/ops",
    health: HealthRegistry | None = None,
    metrics: MetricsRegistry | None = None,
    sampler: SystemSampler | None = None,
    profiler: Profiler | None = None,
    errors: ErrorAggregator | None = None,
    clock: Clock = SYSTEM_CLOCK,
    handle_errors: bool = True,
) -> Ops:
    """Add buttress to ``app``: lifespan, middleware, ops routes under ``prefix``, problem responses.

    Call it before the app starts serving. The app's own lifespan keeps running (buttress's starts
    first and stops last). The secret values of ``settings`` are scrubbed from every log line, error
    group and problem document of the process from then on. ``handle_errors`` adds a problem+json
    handler for ``ButtressError`` unless the app has one; unhandled exceptions become 500 problems
    unless the app handles ``Exception`` itself.
    Everything left as ``None`` comes from ``settings`` (default :func:`buttress.config.get_settings`) or
    the process-wide registries. Returns the :class:`Ops` state, also at ``app.state.buttress``.
    """
    if getattr(app.state, "buttress", None) is not None:
        raise ConflictError("buttress is already installed on this app; call install() once per app")
    _check_prefix(prefix)
    settings = settings if settings is not None else get_settings()
    register_secrets(settings)  # logs, error groups and problems mask them from now on
    sampler = sampler if sampler is not None else default_sampler(settings, clock=clock)
    owns_health = health is None
    ops = Ops(
        settings=settings,
        health=health if health is not None else ops_health_registry(settings, sampler, clock=clock),
        metrics=metrics if metrics is not None else get_metrics(),
        sampler=sampler,
        profiler=profiler if profiler is not None else get_profiler(),
        errors=errors if errors is not None else get_error_aggregator(),
        auth=AdminAuth.from_settings(settings, clock=clock),
        clock=clock,
        prefix=prefix,
        owns_health=owns_health,
    )
    app.state.buttress = ops
    app.router.lifespan_context = ops.wrap_lifespan(app.router.lifespan_context)
    app.add_middleware(
        OpsMiddleware,
        metrics=ops.metrics,
        errors=ops.errors,
        expose_details=ops.expose_details,
        exception_handlers=lambda: app.exception_handlers,
    )
    route_class = _problem_route_class(ops.expose_details)
    require_admin, optional_admin = admin_dependencies(ops.auth)
    app.include_router(health_router(ops, route_class), prefix=prefix)
    app.include_router(observe_router(ops, route_class, optional_admin), prefix=prefix)
    app.include_router(resilience_router(route_class), prefix=prefix)
    app.include_router(cache_router(route_class), prefix=prefix)
    app.include_router(realtime_routes(ops, partial(build_snapshot, ops)), prefix=f"{prefix}/realtime")
    app.include_router(assets_router(route_class), prefix=prefix)
    app.include_router(dashboard_router(ops, route_class, optional_admin), prefix=prefix)
    if app.docs_url is None and getattr(app.state, "buttress_docs", None) is None:  # the host's docs stay
        add_offline_docs(app, assets=prefix + ASSETS, docs=f"{prefix}/docs")
    if db_installed():  # without the [db] extra there is no database to describe
        from buttress.server._routes_db import db_router  # noqa: PLC0415 - SQLAlchemy, only with the extra
        from buttress.server._routes_files import files_installed, files_router  # noqa: PLC0415 - as jobs are
        from buttress.server._routes_jobs import jobs_router  # noqa: PLC0415 - jobs live in the database

        app.include_router(db_router(ops, route_class), prefix=prefix)
        app.include_router(jobs_router(ops, route_class, optional_admin), prefix=prefix)
        if files_installed():
            app.include_router(files_router(ops, route_class, optional_admin), prefix=prefix)
    if ops.auth.configured:
        app.include_router(admin_router(ops, route_class, require_admin), prefix=prefix)
        app.include_router(resilience_admin_router(route_class, require_admin), prefix=prefix)
        app.include_router(cache_admin_router(route_class, require_admin), prefix=prefix)
        if db_installed():
            from buttress.server._routes_files import (  # noqa: PLC0415 - as above
                files_admin_router,
                files_installed,
            )
            from buttress.server._routes_jobs import jobs_admin_router  # noqa: PLC0415 - as above

            app.include_router(jobs_admin_router(ops, route_class, require_admin), prefix=prefix)
            if files_installed():
                app.include_router(files_admin_router(ops, route_class, require_admin), prefix=prefix)
    if handle_errors and ButtressError not in app.exception_handlers:
        app.add_exception_handler(ButtressError, _error_handler(ops))
    _add_problem_schemas(app)
    return ops


def _error_handler(ops: Ops) -> Callable[[Request, Exception], Response]:
    def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ButtressError)  # noqa: S101 - registered for ButtressError only
        return error_problem(request, exc, expose_details=ops.expose_details)

    return handle


def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    return validation_problem(request, exc.errors())


def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    return http_problem(request, exc)


def create_app(
    settings: Settings | None = None,
    *,
    health: HealthRegistry | None = None,
    metrics: MetricsRegistry | None = None,
    sampler: SystemSampler | None = None,
    profiler: Profiler | None = None,
    errors: ErrorAggregator | None = None,
    clock: Clock = SYSTEM_CLOCK,
    prefix: str = "",
) -> FastAPI:
    """The standalone ops server (what ``buttress serve`` runs): health, metrics, stats and admin.

    Arguments as for :func:`install`; the routes sit at the root unless ``prefix`` says otherwise.
    """
    settings = settings if settings is not None else get_settings()
    app = FastAPI(
        title=f"{settings.app.name} ops",
        version=buttress_version(),
        description="buttress ops server: health probes, Prometheus metrics, stats, errors and admin.",
        docs_url=None,  # Swagger UI and ReDoc from the package's files, not a CDN (below)
        redoc_url=None,
    )
    add_offline_docs(app, assets=prefix + ASSETS, docs="/docs", redoc="/redoc")
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    install(
        app,
        settings,
        prefix=prefix,
        health=health,
        metrics=metrics,
        sampler=sampler,
        profiler=profiler,
        errors=errors,
        clock=clock,
    )
    return app
