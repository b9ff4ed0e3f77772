"""RFC 9457 problem responses: the one error shape of the ops server (and of apps buttress is installed in).

Three sources of problems, one document shape (:class:`Problem`):

- a :class:`~buttress.errors.ButtressError` keeps its ``error_code``, status and message; its ``context``
  and traceback are added only when ``expose_details`` is on (development);
- a request that fails validation (FastAPI's ``RequestValidationError``) lists each bad field's location,
  message and type, never its value (which could be a secret someone pasted in the wrong field);
- anything else is a 500 with a fresh ``error_id``. The exception goes to the log (with that id) and to
  error aggregation; the body names neither its type nor its message unless ``expose_details`` is on.

Every document leaves through :func:`_response`, the one choke point that scrubs its text: the secret
values of the loaded settings, URL passwords and credential ``name=value`` pairs are masked wherever
they appear (:mod:`buttress.observe.secrets`), in development details too.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from buttress.errors import PROBLEM_TYPE_PREFIX, ButtressError
from buttress.observe.secrets import SecretScrubber, get_secret_scrubber

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "FieldProblem",
    "Problem",
    "ProblemResponse",
    "error_problem",
    "http_problem",
    "problem_responses",
    "unhandled_problem",
    "validation_problem",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_MAX_TRACEBACK_CHARS = 16_000

_HTTP_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
}


class ProblemResponse(JSONResponse):
    """A JSON response sent as ``application/problem+json``."""

    media_type = PROBLEM_CONTENT_TYPE


class FieldProblem(BaseModel):
    """One invalid part of a request: where (``loc``), what is wrong (``msg``) and pydantic's error type."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem details document with buttress's extension members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the kind of problem: urn:buttress:error:<error_code>.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="What went wrong in this occurrence.")
    instance: str | None = Field(default=None, description="Path of the request that failed.")
    error_code: str = Field(description="Stable code to match on, log and alert on.")
    request_id: str | None = Field(default=None, description="The request's X-Request-ID.")
    error_id: str | None = Field(
        default=None, description="Unique id of an unexpected error; the log line carries it too."
    )
    errors: list[FieldProblem] | None = Field(default=None, description="Each invalid part of the request.")
    context: dict[str, Any] | None = Field(
        default=None, description="Facts about the failure (development mode only)."
    )
    exception: str | None = Field(default=None, description="Exception type and message (development only).")
    traceback: str | None = Field(default=None, description="Traceback (development mode only).")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting ``statuses`` as problem+json documents."""
    descriptions = {
        400: "The request body cannot be parsed (not UTF-8 JSON).",
        401: "Missing, wrong or expired admin credentials.",
        404: "Not found.",
        422: "The request is invalid.",
        500: "Unexpected error.",
        503: "Unavailable.",
    }
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "description": descriptions.get(status, "Error."),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
        }
        for status in statuses
    }


def _request_id(request: Request) -> str | None:
    value = request.scope.get("buttress.request_id")
    return value if isinstance(value, str) else None


def _response(
    problem: dict[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> ProblemResponse:
    body = {key: value for key, value in problem.items() if value is not None}
    scrubbed = _scrubbed(jsonable_encoder(body), get_secret_scrubber())
    return ProblemResponse(scrubbed, status_code=status, headers=headers)


def _scrubbed(value: Any, scrubber: SecretScrubber) -> Any:
    """Every string of a JSON-ready document scrubbed (keys are the document's own names)."""
    if isinstance(value, str):
        return scrubber.scrub(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item, scrubber) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item, scrubber) for item in value]
    return value


def _traceback_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= _MAX_TRACEBACK_CHARS else "…" + text[-_MAX_TRACEBACK_CHARS:]


def error_problem(request: Request, exc: ButtressError, *, expose_details: bool) -> ProblemResponse:
    """The problem for a :class:`ButtressError`: its code, status and message; internals only in dev."""
    problem = exc.to_problem(instance=request.url.path)
    problem["request_id"] = _request_id(request)
    if expose_details:
        problem["exception"] = f"{type(exc).__name__}: {exc}"
        problem["traceback"] = _traceback_text(exc)
    else:
        problem.pop("context", None)
    headers: dict[str, str] = dict(getattr(exc, "response_headers", None) or {})
    retry_after = problem.get("retry_after")
    if isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return _response(problem, exc.status, headers)


def validation_problem(request: Request, errors: Sequence[Any]) -> ProblemResponse:
    """422 listing each invalid field; values are never echoed back."""
    fields = [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in errors
        if isinstance(error, Mapping)
    ]
    count = len(fields)
    problem = {
        "type": PROBLEM_TYPE_PREFIX + "validation_failed",
        "title": "Validation failed",
        "status": 422,
        "detail": f"The request is invalid ({count} problem{'s' * (count != 1)}); see errors.",
        "instance": request.url.path,
        "error_code": "validation_failed",
        "request_id": _request_id(request),
        "errors": fields,
    }
    return _response(problem, 422)


def http_problem(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    """Starlette's HTTP errors (404 for an unknown path, 405, ...) in the same shape."""
    status = exc.status_code
    title = _HTTP_TITLES.get(status, "HTTP error")
    code = title.lower().replace(" ", "_")
    problem = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": str(exc.detail) if exc.detail else title,
        "instance": request.url.path,
        "error_code": code,
        "request_id": _request_id(request),
    }
    return _response(problem, status, exc.headers)


def new_error_id() -> str:
    return uuid.uuid4().hex


def unhandled_problem(
    path: str, exc: BaseException, *, error_id: str, request_id: str | None, expose_details: bool
) -> ProblemResponse:
    """500 for an unexpected exception: an error id to quote, and internals only in development."""
    problem: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + "internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": f"An unexpected error occurred; quote error id {error_id} when reporting it.",
        "instance": path,
        "error_code": "internal_error",
        "request_id": request_id,
        "error_id": error_id,
    }
    if expose_details:
        problem["exception"] = f"{type(exc).__name__}: {exc}"
        problem["traceback"] = _traceback_text(exc)
    return _response(problem, 500)
