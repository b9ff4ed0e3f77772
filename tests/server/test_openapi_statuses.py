"""Every error status an ops operation really answers is documented in its OpenAPI ``responses``.

The test walks the app's routes (so a route added later is covered without editing it), provokes every
error it can for each operation -- no credentials, a wrong one, a path parameter naming nothing, bad query
values, a body that is not JSON, JSON of the wrong shape, a body far too large, a failing health check --
and requires each status it saw to be in that operation's ``responses``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from buttress.server import install

from .conftest import ADMIN_TOKEN, JWT_KEY, bearer, build, client_for, make_settings

_PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")
_LARGE_BODY = b'{"names": ["' + b"x" * 2_000_000 + b'"]}'


def _app(*, admin: bool, healthy: bool, installed: bool = False) -> FastAPI:
    health = HealthRegistry()
    health.add("database", lambda: healthy, groups=("liveness", "readiness", "startup", "deploy"))
    security = {"admin_token": ADMIN_TOKEN} if admin else {}
    server = {"jwt_key": JWT_KEY} if admin else {}
    settings = make_settings(security=security, server=server)
    if not installed:
        return build(settings=settings, health=health).app
    app = FastAPI()  # a host app without buttress's handlers: the ops routes answer problems all the same
    install(app, settings, health=health, errors=ErrorAggregator(), metrics=MetricsRegistry())
    return app


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every operation of the app, as its OpenAPI document lists the routes: method, path, operation."""
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _url(path: str, value: str) -> str:
    return _PATH_PARAMETER.sub(value, path)


def _probes(method: str, path: str, operation: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Requests meant to fail in every way this operation can (plus a plain one)."""
    admin = bearer(ADMIN_TOKEN)
    url = _url(path, "x")
    yield {"method": method, "url": url, "headers": admin}
    yield {"method": method, "url": url}
    yield {"method": method, "url": url, "headers": bearer("wrong")}
    yield {"method": method, "url": url, "headers": bearer("a.b.c")}
    yield {"method": method, "url": _url(path, "no-such-thing-anywhere"), "headers": admin}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query":
            for bad in ("not-a-number", "0", "-1", "99999999", ""):
                yield {"method": method, "url": url, "headers": admin, "params": {parameter["name"]: bad}}
    if "requestBody" in operation:
        json_type = {**admin, "content-type": "application/json"}
        bodies = (
            b"{not json",
            b"\xff",
            b"\xff\xfe",
            b"[1, 2]",
            b'{"names": 5, "level": 5}',
            b"null",
            _LARGE_BODY,
        )
        for body in bodies:
            yield {"method": method, "url": url, "headers": json_type, "content": body}
        yield {
            "method": method,
            "url": url,
            "headers": {**admin, "content-type": "text/plain"},
            "content": b"hi",
        }


async def _seen_statuses(app: FastAPI) -> dict[tuple[str, str], set[int]]:
    seen: dict[tuple[str, str], set[int]] = {}
    async with client_for(app) as client:
        for method, path, operation in _operations(app.openapi()):
            statuses = seen.setdefault((method, path), set())
            for probe in _probes(method, path, operation):
                response: httpx.Response = await client.request(**probe)
                statuses.add(response.status_code)
    return seen


@pytest.mark.parametrize("installed", [False, True], ids=["create_app", "install"])
@pytest.mark.parametrize(("admin", "healthy"), [(True, True), (True, False), (False, True), (False, False)])
async def test_every_error_status_an_operation_answers_is_documented(
    admin: bool, healthy: bool, installed: bool
) -> None:
    app = _app(admin=admin, healthy=healthy, installed=installed)
    schema = app.openapi()
    seen = await _seen_statuses(app)
    assert seen, "no operation was walked"
    undocumented = {
        f"{method} {path}": sorted(
            status
            for status in statuses
            if status >= 400 and str(status) not in schema["paths"][path][method.lower()]["responses"]
        )
        for (method, path), statuses in seen.items()
    }
    undocumented = {operation: statuses for operation, statuses in undocumented.items() if statuses}
    assert undocumented == {}
    assert not any(500 in statuses for statuses in seen.values())


async def test_the_walk_provokes_the_statuses_it_claims() -> None:
    """The probes really reach the error paths (a walk that only saw 200s would prove nothing)."""
    seen = await _seen_statuses(_app(admin=True, healthy=False))
    every = set().union(*seen.values())
    assert {400, 401, 404, 422, 503} <= every
    # Malformed JSON is a 422 (json_invalid); a body that is not UTF-8 is FastAPI's 400 "There was an
    # error parsing the body".
    assert {400, 422} <= seen[("POST", "/cache/warm")]
    assert 401 in seen[("GET", "/errors")]
    assert 503 in seen[("GET", "/health/ready")]
