"""The request middleware: request ids, per-route metrics and the last line of defence for errors.

Pure ASGI rather than ``BaseHTTPMiddleware``: no extra task per request, no body buffering, streaming
responses untouched, and context variables bound here are seen by the endpoint.

Metrics are labelled by the matched **route template** (``/items/{item_id}``), read from the ``route``
that Starlette's router leaves in the scope, never by the raw path: otherwise every scanner probing
``/wp-admin.php`` would mint a new series. Requests no route matched share ``route="<unmatched>"``, and
unknown methods share ``method="OTHER"``.

Each request runs in its own container scope (``container.scope()`` of the default container), so SCOPED
services such as the database session are one per request and closed once the response is sent.

An exception that no handler turned into a response becomes a 500 problem here, with an ``error_id`` that
is logged with the traceback and the request id, and the exception goes to error aggregation. When the
application has its own handler for ``Exception`` or 500, the exception is left to it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, reset_contextvars

from buttress.container import get_container
from buttress.observe.errors import ErrorAggregator
from buttress.observe.metrics import MetricsRegistry
from buttress.server._problems import new_error_id, unhandled_problem

__all__ = [
    "REQUEST_ID_HEADER",
    "UNMATCHED_ROUTE",
    "OpsMiddleware",
    "declare_request_metrics",
    "route_template",
]

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED_ROUTE = "<unmatched>"
SCOPE_REQUEST_ID = "buttress.request_id"

_REQUEST_ID_BYTES = REQUEST_ID_HEADER.lower().encode("latin-1")
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}

# stdlib logging, not structlog: it reaches the app's handlers whether or not configure_logging() ran,
# and when it did, the record gets the same bound context (request id) and formatting.
_log = logging.getLogger("buttress.server")


def declare_request_metrics(metrics: MetricsRegistry) -> tuple[Any, Any]:
    """The two request metrics, declared (or fetched again) in ``metrics``."""
    requests = metrics.counter(
        "buttress_server_requests_total",
        "HTTP requests answered, by method, route template and status class.",
        labels=("method", "route", "status_class"),
    )
    duration = metrics.histogram(
        "buttress_server_request_duration_seconds",
        "Seconds from receiving a request to sending its last byte, by method and route template.",
        labels=("method", "route"),
    )
    return requests, duration


def route_template(scope: Scope, entry_root_path: str = "") -> str:
    """The template of the route that handled ``scope``, with the paths of mounts it went through."""
    route = scope.get("route")
    root_path = scope.get("root_path", "")
    mounted = root_path[len(entry_root_path) :] if root_path.startswith(entry_root_path) else ""
    if route is None:
        # FastAPI's router does not record a Mount as the route: a request that went into a mounted
        # app without routes of its own (static files) only shows in the longer root_path.
        return mounted + "/{path:path}" if mounted else UNMATCHED_ROUTE
    # FastAPI >= 0.13x keeps included routers nested: scope["route"] is the route as declared (no
    # prefix) and the full template is on the "effective route context" FastAPI leaves in its scope.
    fastapi_scope = scope.get("fastapi")
    context = fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    path = getattr(context, "path_format", None)
    if not isinstance(path, str):
        path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    if isinstance(route, Mount):  # a mounted app without routes of its own (static files, a sub-app)
        return mounted + "/{path:path}"
    return mounted + path


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when it is a sane token (it ends up in logs), else a new one."""
    for name, value in headers:
        if name == _REQUEST_ID_BYTES:
            text = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(text):
                return text
            break
    return os.urandom(16).hex()  # a uuid4's randomness and length, without building a UUID object


class OpsMiddleware:
    """Request ids, request metrics and 500 problems for unhandled exceptions (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: MetricsRegistry,
        errors: ErrorAggregator,
        expose_details: bool,
        exception_handlers: Callable[[], Mapping[Any, Any]] = dict,
    ) -> None:
        self.app = app
        self._requests, self._duration = declare_request_metrics(metrics)
        # (method, route, status class) -> its two series: skips the label lookups on the hot path.
        # Bounded: methods and status classes are fixed sets and routes are templates.
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._now = metrics.now
        self._errors = errors
        self._expose_details = expose_details
        self._exception_handlers = exception_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = self._now()
        entry_root_path = scope.get("root_path", "")
        request_id = _request_id(scope.get("headers", []))
        scope[SCOPE_REQUEST_ID] = request_id
        header = (_REQUEST_ID_BYTES, request_id.encode("latin-1"))
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        # structlog's bind/reset rather than bind_context(): the same effect at a fifth of the cost.
        tokens = bind_contextvars(request_id=request_id)
        try:
            # the request's scope: its sessions, closed after it; named for per-request findings (N+1)
            async with get_container().scope(f"{scope['method']} {scope.get('path', '')}"[:200]):
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception as exc:
                    if started or self._app_handles_errors():
                        raise
                    response = self._unhandled(scope, exc, request_id)
                    await response(scope, receive, send_with_id)
        finally:
            reset_contextvars(**tokens)
            self._record(scope, entry_root_path, status, start)

    def _record(self, scope: Scope, entry_root_path: str, status: int, start: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        key = (method, route_template(scope, entry_root_path), _status_class(status))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self._requests.labels(method=key[0], route=key[1], status_class=key[2]),
                self._duration.labels(method=key[0], route=key[1]),
            )
        series[0].inc()
        series[1].observe(max(self._now() - start, 0.0))

    def _app_handles_errors(self) -> bool:
        handlers = self._exception_handlers()
        return Exception in handlers or 500 in handlers

    def _unhandled(self, scope: Scope, exc: Exception, request_id: str) -> Any:
        error_id = new_error_id()
        method, path = scope["method"], scope.get("path", "")
        route = route_template(scope)
        fingerprint = self._errors.record(
            exc, context={"error_id": error_id, "request_id": request_id, "method": method, "route": route}
        )
        _log.error(
            "unhandled error in %s %s: error id %s, group %s",
            method,
            path,
            error_id,
            fingerprint,
            exc_info=exc,
            extra={"error_id": error_id, "fingerprint": fingerprint},
        )
        return unhandled_problem(
            path, exc, error_id=error_id, request_id=request_id, expose_details=self._expose_details
        )


def _status_class(status: int) -> str:
    return _STATUS_CLASSES.get(status // 100, "other")
