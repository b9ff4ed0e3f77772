"""One error vocabulary for every buttress component.

Each error has a stable ``error_code`` (safe to match on, log and alert on), a ``context`` dict of facts
about the failure, and an HTTP ``status`` so the ops server and user APIs can answer with RFC 9457
``application/problem+json`` documents through :meth:`ButtressError.to_problem`.

The tree::

    ButtressError                      internal_error          500
    ├── ConfigError                    config_invalid          500
    ├── ValidationError                validation_failed       422
    ├── NotFoundError                  not_found               404
    ├── ConflictError                  conflict                409
    ├── RateLimited                    rate_limited            429
    ├── CircuitOpen                    circuit_open            503
    ├── RetryExhausted                 retry_exhausted         502
    ├── DeadlineExceeded               deadline_exceeded       504
    ├── BulkheadFull                   bulkhead_full           503
    ├── QueueFull                      queue_full              503
    ├── QuotaExceeded                  quota_exceeded          429 (413 when it can never fit)
    ├── FileTooLarge                   file_too_large          413
    ├── FileTypeRejected               file_type_rejected      415
    ├── BackendUnavailable             backend_unavailable     503
    ├── UpstreamError                  upstream_error          502
    │   ├── UpstreamTimeout            upstream_timeout        504
    │   ├── UpstreamStatusError        upstream_status         502
    │   └── DownloadTooLarge           download_too_large      502
    └── ContainerError                 container_error         500
        ├── ServiceNotRegistered       service_not_registered  500
        ├── DependencyCycle            dependency_cycle        500
        └── ScopeRequired              scope_required          500
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "BackendUnavailable",
    "BulkheadFull",
    "ButtressError",
    "CircuitOpen",
    "ConfigError",
    "ConfigProblem",
    "ConflictError",
    "ContainerError",
    "DeadlineExceeded",
    "DependencyCycle",
    "DownloadTooLarge",
    "FileTooLarge",
    "FileTypeRejected",
    "NotFoundError",
    "QueueFull",
    "QuotaExceeded",
    "RateLimited",
    "RetryExhausted",
    "ScopeRequired",
    "ServiceNotRegistered",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "ValidationError",
]

PROBLEM_TYPE_PREFIX = "urn:buttress:error:"
MASK = "**********"


def is_pydantic_secret(value: Any) -> bool:
    """Whether ``value`` is a pydantic ``SecretStr``/``SecretBytes``, without importing pydantic here.

    No secret object can exist before pydantic is imported, so errors (imported by everything) stay light.
    """
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.SecretStr | pydantic.SecretBytes)


def _public_value(value: Any) -> Any:
    """Make a context value safe to put in a response or a log: secrets masked, the rest JSON-friendly."""
    if is_pydantic_secret(value):
        return MASK
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _public_value(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_public_value(v) for v in value]
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


class ButtressError(Exception):
    """Base of every error buttress raises on purpose.

    Subclasses fix a default ``error_code``, ``status`` and ``title``; callers may override the code and
    status per instance when a more specific one exists.
    """

    default_code: ClassVar[str] = "internal_error"
    default_status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code or self.default_code
        self.context: dict[str, Any] = dict(context or {})
        self.status = status or self.default_status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, error_code={self.error_code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors defeat Exception's default pickling, which replays ``args``.
        # Errors cross process boundaries (job workers, multiprocessing), so rebuild from ``__dict__``.
        return (_rebuild_error, (type(self), self.__dict__.copy()))

    def to_problem(self, *, instance: str | None = None) -> dict[str, Any]:
        """Return an RFC 9457 problem details document; extension members carry the code and context."""
        problem: dict[str, Any] = {
            "type": PROBLEM_TYPE_PREFIX + self.error_code,
            "title": self.title,
            "status": self.status,
            "detail": self.message,
            "error_code": self.error_code,
        }
        if instance is not None:
            problem["instance"] = instance
        if self.context:
            problem["context"] = _public_value(self.context)
        return problem


def _rebuild_error(cls: type[ButtressError], state: dict[str, Any]) -> ButtressError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One invalid setting: which variable, what it held (masked if secret), what was expected."""

    variable: str
    value: str | None
    expected: str
    example: str | None = None
    source: str | None = None
    """Where the value was set when that is not the variable itself in the environment: ``.env line 3``,
    ``in BUTTRESS_APP`` (a section given as JSON)."""

    def describe(self) -> str:
        shown = "<missing>" if self.value is None else repr(self.value)
        where = "" if self.source is None else f" ({self.source})"
        line = f"{self.variable}={shown}{where}: {self.expected}"
        if self.example is not None:
            line += f" (example: {self.variable}={self.example})"
        return line


class ConfigError(ButtressError):
    """The configuration is invalid; ``problems`` lists every bad variable, not only the first."""

    default_code = "config_invalid"
    title = "Invalid configuration"

    def __init__(
        self,
        message: str,
        *,
        problems: Sequence[ConfigProblem] = (),
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        self.problems = tuple(problems)
        if self.problems:
            message = message + "\n" + "\n".join("  - " + p.describe() for p in self.problems)
        merged = {"problems": [p.variable for p in self.problems], **(context or {})}
        super().__init__(message, error_code=error_code, context=merged, status=status)


class ValidationError(ButtressError, ValueError):
    """An argument or input failed validation; ``field`` names it.

    Also a ``ValueError``, so code that guards a bad argument the standard way catches it too.
    """

    default_code = "validation_failed"
    default_status = 422
    title = "Validation failed"

    def __init__(
        self,
        message: str,
        *,
        field: str,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        self.field = field
        super().__init__(
            message, error_code=error_code, context={"field": field, **(context or {})}, status=status
        )


class NotFoundError(ButtressError):
    """A resource does not exist."""

    default_code = "not_found"
    default_status = 404
    title = "Not found"

    def __init__(
        self,
        resource_type: str,
        resource_id: object,
        *,
        message: str | None = None,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        super().__init__(
            message or f"{resource_type} {resource_id!r} was not found",
            error_code=error_code,
            context={"resource_type": resource_type, "resource_id": str(resource_id), **(context or {})},
            status=status,
        )


class ConflictError(ButtressError):
    """The request conflicts with the current state (a duplicate key, a stale version)."""

    default_code = "conflict"
    default_status = 409
    title = "Conflict"


def _check_retry_after(retry_after: float) -> float:
    if not math.isfinite(retry_after) or retry_after < 0:
        raise ValueError(f"retry_after must be a finite number of seconds >= 0, got {retry_after!r}")
    return float(retry_after)


class _RetryAfterError(ButtressError):
    """An error that tells the caller how long to wait before trying again."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        self.retry_after = _check_retry_after(retry_after)
        super().__init__(
            message,
            error_code=error_code,
            context={"retry_after": self.retry_after, **(context or {})},
            status=status,
        )

    def to_problem(self, *, instance: str | None = None) -> dict[str, Any]:
        problem = super().to_problem(instance=instance)
        problem["retry_after"] = self.retry_after
        return problem


class RateLimited(_RetryAfterError):
    """A rate limit refused the call; retry after ``retry_after`` seconds."""

    default_code = "rate_limited"
    default_status = 429
    title = "Rate limited"


class CircuitOpen(_RetryAfterError):
    """A circuit breaker is open and short-circuited the call; it may admit a probe after ``retry_after``."""

    default_code = "circuit_open"
    default_status = 503
    title = "Circuit open"


class RetryExhausted(ButtressError):
    """Every attempt failed; ``last_error`` is the final attempt's exception (also the ``__cause__``)."""

    default_code = "retry_exhausted"
    default_status = 502
    title = "Retries exhausted"

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        last_error: BaseException | None,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            message,
            error_code=error_code,
            context={"attempts": attempts, "last_error": last_error, **(context or {})},
            status=status,
        )
        self.__cause__ = last_error


class DeadlineExceeded(ButtressError):
    """The operation ran past its deadline or timeout."""

    default_code = "deadline_exceeded"
    default_status = 504
    title = "Deadline exceeded"


class BulkheadFull(ButtressError):
    """A bulkhead has no free slot and no room in its queue (or the wait ran out)."""

    default_code = "bulkhead_full"
    default_status = 503
    title = "Bulkhead full"


class QueueFull(ButtressError):
    """A bounded queue refused an item."""

    default_code = "queue_full"
    default_status = 503
    title = "Queue full"


class QuotaExceeded(ButtressError):
    """A usage quota (requests, bytes, files) is spent."""

    default_code = "quota_exceeded"
    default_status = 429
    title = "Quota exceeded"


class FileTooLarge(ButtressError):
    """An upload went over its size limit; it was cut there and nothing of it was kept."""

    default_code = "file_too_large"
    default_status = 413
    title = "File too large"


class FileTypeRejected(ButtressError):
    """A file's content is not an allowed type, or disagrees with its declared type or extension."""

    default_code = "file_type_rejected"
    default_status = 415
    title = "File type rejected"


class BackendUnavailable(ButtressError):
    """A backend (Redis, PostgreSQL, ...) cannot be reached; ``backend`` names it."""

    default_code = "backend_unavailable"
    default_status = 503
    title = "Backend unavailable"

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        self.backend = backend
        super().__init__(
            message, error_code=error_code, context={"backend": backend, **(context or {})}, status=status
        )


class UpstreamError(ButtressError):
    """A request to another service failed: it could not connect, the connection broke, or (subclasses)
    the answer was too slow or an error status. ``context`` names the host, method, URL and attempts."""

    default_code = "upstream_error"
    default_status = 502
    title = "Upstream request failed"


class UpstreamTimeout(UpstreamError):
    """The other service did not answer within one of the request's timeouts."""

    default_code = "upstream_timeout"
    default_status = 504
    title = "Upstream timed out"


class UpstreamStatusError(UpstreamError):
    """The other service answered with an error status; ``response`` is its (closed) answer."""

    default_code = "upstream_status"
    title = "Upstream answered with an error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        response: Any = None,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        self.status_code = status_code
        self.response = response
        super().__init__(
            message,
            error_code=error_code,
            context={"status_code": status_code, **(context or {})},
            status=status,
        )


class DownloadTooLarge(UpstreamError):
    """A download went over its size cap; it was aborted and nothing was left on disk."""

    default_code = "download_too_large"
    title = "Download too large"


class ContainerError(ButtressError):
    """The dependency container cannot build what was asked."""

    default_code = "container_error"
    title = "Container error"


class ServiceNotRegistered(ContainerError):
    """A type was resolved (directly or as a parameter) that nobody registered."""

    default_code = "service_not_registered"
    title = "Service not registered"


class DependencyCycle(ContainerError):
    """Services depend on each other in a cycle; ``cycle`` lists its members in order."""

    default_code = "dependency_cycle"
    title = "Dependency cycle"


class ScopeRequired(ContainerError):
    """A SCOPED service was resolved outside a scope."""

    default_code = "scope_required"
    title = "Scope required"
