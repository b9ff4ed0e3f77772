"""Files the ops pages load, served by the app itself: the dashboard's and Swagger UI's (no CDN).

A service behind a firewall, or a browser offline, must still get its API docs and its dashboard. The
dashboard's HTML, CSS and JS ship in ``buttress/server/static``; Swagger UI's and ReDoc's bundles come
from the ``fastapi-offline`` package (a dependency of the ``[server]`` extra), read where pip installed
them, never copied into this tree. Both are read once through :mod:`importlib.resources` and answered
from memory with an ETag, under ``{prefix}/_assets/``.

``/docs`` (and ``/redoc``): :func:`create_app` builds its pages on these files. :func:`install` leaves
a host app's own docs alone (they are the host's to configure); it adds ``{prefix}/docs`` only when the
host has an OpenAPI document but no docs page of its own.
"""

from __future__ import annotations

import hashlib
import threading
from importlib import resources
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse, Response

from buttress.errors import NotFoundError

__all__ = ["ASSETS", "SWAGGER", "add_offline_docs", "assets_router", "read_asset"]

ASSETS: Final = "/_assets"
"""Where the files are served, under the ops prefix."""

SWAGGER: Final = "swagger"
"""The folder of Swagger UI's and ReDoc's files under :data:`ASSETS`."""

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
}
_OWN: Final = frozenset({"dashboard.css", "dashboard.js"})
_SWAGGER_FILES: Final = frozenset(
    {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}
)

_cache: dict[tuple[str, str], tuple[bytes, str]] = {}
_cache_lock = threading.Lock()


def read_asset(package: str, name: str) -> tuple[bytes, str]:
    """The bytes of ``package``'s ``static/<name>`` and their ETag, read once per process."""
    key = (package, name)
    with _cache_lock:
        found = _cache.get(key)
    if found is None:
        data = (resources.files(package) / "static" / name).read_bytes()
        found = (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
        with _cache_lock:
            _cache[key] = found
    return found


def _answer(request: Request, package: str, name: str) -> Response:
    data, etag = read_asset(package, name)
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    suffix = name[name.rfind(".") :]
    return Response(data, media_type=_TYPES[suffix], headers=headers)


def _missing(name: str) -> NotFoundError:
    return NotFoundError("asset", name, message=f"no ops asset named {name!r}")


def assets_router(route_class: type) -> APIRouter:
    """``GET {ASSETS}/<name>`` (the dashboard's files) and ``GET {ASSETS}/swagger/<name>``."""
    router = APIRouter(route_class=route_class, include_in_schema=False)

    @router.get(ASSETS + "/" + SWAGGER + "/{name}")
    def swagger(request: Request, name: str) -> Response:
        if name not in _SWAGGER_FILES:
            raise _missing(f"{SWAGGER}/{name}")
        return _answer(request, "fastapi_offline", name)

    @router.get(ASSETS + "/{name}")
    def own(request: Request, name: str) -> Response:
        if name not in _OWN:
            raise _missing(name)
        return _answer(request, "buttress.server", name)

    return router


def add_offline_docs(app: FastAPI, *, assets: str, docs: str, redoc: str | None = None) -> None:
    """Add Swagger UI at ``docs`` (and ReDoc at ``redoc``) loading their files from ``assets`` + ``/swagger``.

    ``assets`` is where :func:`assets_router` is mounted (``{prefix}/_assets``). The pages name the OpenAPI
    document at ``app.openapi_url``; both honour the ASGI ``root_path`` as FastAPI's own pages do.
    """
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    files = f"{assets}/{SWAGGER}"
    title = app.title

    @app.get(docs, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{files}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{files}/swagger-ui.css",
            swagger_favicon_url=f"{root}{files}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    if redoc is not None:

        @app.get(redoc, include_in_schema=False)
        def redoc_page(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "")
            return get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{root}{files}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{files}/favicon.png",
                with_google_fonts=False,
            )

    app.state.buttress_docs = docs
