"""The ops server: health probes, Prometheus metrics, stats, errors, system, profiler, config and loggers.

Run it on its own with ``buttress serve`` (or ``uvicorn`` on :func:`create_app`), or add it to your own
FastAPI app with :func:`install`, which keeps your lifespan and puts the routes under ``/ops``::

    from fastapi import FastAPI
    from buttress.server import install

    app = FastAPI(lifespan=my_lifespan)
    install(app)                      # /ops/health/ready, /ops/metrics, ...

Admin endpoints (profiler switches, logger levels) exist only when ``BUTTRESS_SECURITY__ADMIN_TOKEN`` or
``BUTTRESS_SERVER__JWT_KEY`` is set. Errors are RFC 9457 ``application/problem+json`` documents.
"""

from __future__ import annotations

from buttress._extras import require

# First, so a core install says "pip install 'buttress[server]'" instead of "No module named 'fastapi'".
for _package in ("fastapi", "jwt"):
    require(_package, "server", "buttress.server (the ops server)")

from buttress._bearer import AdminAuth, AdminAuthError, AdminIdentity
from buttress.server._app import create_app, install
from buttress.server._middleware import REQUEST_ID_HEADER, UNMATCHED_ROUTE, OpsMiddleware, route_template
from buttress.server._ops import Ops
from buttress.server._problems import PROBLEM_CONTENT_TYPE, Problem

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "REQUEST_ID_HEADER",
    "UNMATCHED_ROUTE",
    "AdminAuth",
    "AdminAuthError",
    "AdminIdentity",
    "Ops",
    "OpsMiddleware",
    "Problem",
    "create_app",
    "install",
    "route_template",
]
