"""The live ops dashboard: ``GET {prefix}/dashboard`` (one static page) and its snapshot over HTTP.

The page (``static/dashboard.html``, its CSS and JS under ``{prefix}/_assets/``) opens the realtime
WebSocket at ``{prefix}/realtime/ws`` for the ``ops.snapshot`` feed (:func:`build_snapshot`, once a second)
and the jobs' and breakers' events. ``GET {prefix}/dashboard/snapshot`` answers the same snapshot, so the
page paints at once and keeps working, by polling, where the socket cannot open.

Anonymous readers get what the anonymous JSON routes show; an admin token (typed into the page, kept in
the tab's sessionStorage, sent as a bearer) adds the details and the cancel and retry buttons, which call
the admin routes. The page loads nothing from elsewhere, and its Content-Security-Policy says so.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the endpoint annotations, which
# name dependencies local to the router builder.

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from starlette.responses import JSONResponse, Response

from buttress._bearer import AdminIdentity
from buttress.server._docs_assets import read_asset
from buttress.server._ops import Ops
from buttress.server._snapshot import build_snapshot

__all__ = ["CONTENT_SECURITY_POLICY", "dashboard_router"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Only this server: its script, stylesheet, HTTP routes and WebSocket (CSP3's 'self' covers ws:)."""

_NO_STORE: Final = {"Cache-Control": "no-store"}


def dashboard_router(ops: Ops, route_class: type, optional_admin: Any) -> APIRouter:
    router = APIRouter(route_class=route_class, include_in_schema=False)
    Identity = Annotated[AdminIdentity | None, Depends(optional_admin)]  # noqa: N806 - a type alias

    @router.get("/dashboard")
    async def page() -> Response:  # memory only (read once): no worker thread needed for first paint
        html, etag = read_asset("buttress.server", "dashboard.html")
        headers = {
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "ETag": etag,
            "Cache-Control": "no-cache",
        }
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)

    @router.get("/dashboard/snapshot")
    def snapshot(identity: Identity) -> JSONResponse:
        return JSONResponse(build_snapshot(ops, identity is not None), headers=_NO_STORE)

    return router
