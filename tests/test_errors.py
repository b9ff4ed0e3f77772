"""The error vocabulary: codes, statuses, messages, problem documents, pickling."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

import buttress.errors as errors_module
from buttress.errors import (
    BackendUnavailable,
    BulkheadFull,
    ButtressError,
    CircuitOpen,
    ConfigError,
    ConfigProblem,
    ConflictError,
    ContainerError,
    DeadlineExceeded,
    DependencyCycle,
    DownloadTooLarge,
    FileTooLarge,
    FileTypeRejected,
    NotFoundError,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    RetryExhausted,
    ScopeRequired,
    ServiceNotRegistered,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
    ValidationError,
)

EXPECTED = {
    ButtressError: ("internal_error", 500),
    ConfigError: ("config_invalid", 500),
    ValidationError: ("validation_failed", 422),
    NotFoundError: ("not_found", 404),
    ConflictError: ("conflict", 409),
    RateLimited: ("rate_limited", 429),
    CircuitOpen: ("circuit_open", 503),
    RetryExhausted: ("retry_exhausted", 502),
    DeadlineExceeded: ("deadline_exceeded", 504),
    BulkheadFull: ("bulkhead_full", 503),
    QueueFull: ("queue_full", 503),
    QuotaExceeded: ("quota_exceeded", 429),
    FileTooLarge: ("file_too_large", 413),
    FileTypeRejected: ("file_type_rejected", 415),
    BackendUnavailable: ("backend_unavailable", 503),
    UpstreamError: ("upstream_error", 502),
    UpstreamTimeout: ("upstream_timeout", 504),
    UpstreamStatusError: ("upstream_status", 502),
    DownloadTooLarge: ("download_too_large", 502),
    ContainerError: ("container_error", 500),
    ServiceNotRegistered: ("service_not_registered", 500),
    DependencyCycle: ("dependency_cycle", 500),
    ScopeRequired: ("scope_required", 500),
}


def _instances() -> list[ButtressError]:
    return [
        ButtressError("boom"),
        ConfigError("bad config"),
        ValidationError("limit must be > 0", field="limit"),
        NotFoundError("artist", 42),
        ConflictError("duplicate"),
        RateLimited("slow down", retry_after=1.5),
        CircuitOpen("open", retry_after=30),
        RetryExhausted("gave up", attempts=3, last_error=TimeoutError("t")),
        DeadlineExceeded("late"),
        BulkheadFull("full"),
        QueueFull("queue full"),
        QuotaExceeded("quota"),
        FileTooLarge("over 10 MB"),
        FileTypeRejected("an ELF named .jpg"),
        BackendUnavailable("redis down", backend="redis"),
        UpstreamError("refused", context={"host": "api.example.com", "attempts": 3}),
        UpstreamTimeout("slow"),
        UpstreamStatusError("503 from api.example.com", status_code=503),
        DownloadTooLarge("over 10 MB"),
        ContainerError("c"),
        ServiceNotRegistered("s"),
        DependencyCycle("d"),
        ScopeRequired("r"),
    ]


@pytest.mark.parametrize("error", _instances(), ids=lambda e: type(e).__name__)
def test_each_error_has_its_stable_code_and_status(error: ButtressError) -> None:
    code, status = EXPECTED[type(error)]
    assert error.error_code == code
    assert error.status == status
    problem = error.to_problem()
    assert problem["type"] == f"urn:buttress:error:{code}"
    assert problem["status"] == status
    assert problem["title"] == type(error).title
    assert problem["detail"] == error.message


@pytest.mark.parametrize("error", _instances(), ids=lambda e: type(e).__name__)
def test_every_error_survives_pickling(error: ButtressError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.error_code == error.error_code
    assert clone.to_problem() == error.to_problem()


def test_code_and_status_can_be_overridden_per_instance() -> None:
    error = ConflictError("version mismatch", error_code="stale_version", status=412, context={"version": 3})
    assert error.to_problem(instance="/artists/7") == {
        "type": "urn:buttress:error:stale_version",
        "title": "Conflict",
        "status": 412,
        "detail": "version mismatch",
        "error_code": "stale_version",
        "instance": "/artists/7",
        "context": {"version": 3},
    }


def test_problem_context_masks_secrets_and_stringifies_objects() -> None:
    error = ButtressError(
        "x", context={"api_key": SecretStr("sk-live"), "nested": {"path": Path("/tmp")}, "ids": (1, 2)}
    )
    problem = error.to_problem()
    assert problem["context"] == {"api_key": "**********", "nested": {"path": "/tmp"}, "ids": [1, 2]}
    assert "sk-live" not in repr(problem)


def test_retry_after_errors_expose_it_as_attribute_context_and_problem_member() -> None:
    error = RateLimited(
        "60/minute spent for api.example.com", retry_after=2, context={"host": "api.example.com"}
    )
    assert error.retry_after == 2.0
    assert error.context == {"retry_after": 2.0, "host": "api.example.com"}
    assert error.to_problem()["retry_after"] == 2.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_retry_after_must_be_a_finite_non_negative_number(bad: float) -> None:
    with pytest.raises(ValueError, match=r"retry_after must be a finite number of seconds >= 0"):
        CircuitOpen("open", retry_after=bad)


def test_not_found_builds_its_message_from_type_and_id() -> None:
    error = NotFoundError("artist", "abc")
    assert str(error) == "artist 'abc' was not found"
    assert error.context == {"resource_type": "artist", "resource_id": "abc"}
    assert NotFoundError("job", 1, message="job 1 expired").message == "job 1 expired"


def test_retry_exhausted_chains_the_last_error() -> None:
    last = ConnectionError("reset by peer")
    error = RetryExhausted("3 attempts failed", attempts=3, last_error=last)
    assert error.__cause__ is last
    assert error.to_problem()["context"] == {"attempts": 3, "last_error": "ConnectionError: reset by peer"}


def test_validation_and_backend_errors_name_what_failed() -> None:
    assert ValidationError("must be positive", field="ttl").field == "ttl"
    assert BackendUnavailable("no answer", backend="postgres").to_problem()["context"] == {
        "backend": "postgres"
    }


def test_config_error_lists_every_problem_with_value_expectation_and_example() -> None:
    error = ConfigError(
        "invalid configuration",
        problems=[
            ConfigProblem("BUTTRESS_EVENTS__QUEUE_SIZE", "-3", "an integer >= 1", "1000"),
            ConfigProblem("BUTTRESS_SECURITY__SECRET_KEY", "**********", "at least 32 characters"),
            ConfigProblem("BUTTRESS_REDIS_URL", None, "a redis:// URL", "redis://localhost:6379/0"),
        ],
    )
    assert str(error).splitlines() == [
        "invalid configuration",
        "  - BUTTRESS_EVENTS__QUEUE_SIZE='-3': an integer >= 1 (example: BUTTRESS_EVENTS__QUEUE_SIZE=1000)",
        "  - BUTTRESS_SECURITY__SECRET_KEY='**********': at least 32 characters",
        "  - BUTTRESS_REDIS_URL=<missing>: a redis:// URL (example: BUTTRESS_REDIS_URL=redis://localhost:6379/0)",
    ]
    assert error.context["problems"] == [
        "BUTTRESS_EVENTS__QUEUE_SIZE",
        "BUTTRESS_SECURITY__SECRET_KEY",
        "BUTTRESS_REDIS_URL",
    ]


def test_repr_names_class_and_code() -> None:
    assert repr(QueueFull("full")) == "QueueFull('full', error_code='queue_full')"


def test_module_docstring_draws_every_error_of_the_tree() -> None:
    doc = errors_module.__doc__ or ""
    for cls, (code, status) in EXPECTED.items():
        assert re.search(rf"\b{cls.__name__}\s+{code}\s+{status}\b", doc), (
            f"{cls.__name__} missing from the tree"
        )


def test_errors_reference_lists_every_error_code() -> None:
    from buttress.events import EventBusClosed
    from buttress.server import AdminAuthError

    readme = (Path(__file__).parent.parent / "docs" / "reference" / "errors.md").read_text()
    for cls, (code, status) in EXPECTED.items():
        assert f"| `{cls.__name__}` | `{code}` | {status} |" in readme, (
            f"the errors reference misses {cls.__name__}"
        )
    public = {EventBusClosed: "buttress.events", AdminAuthError: "buttress.server"}  # where users import them
    for cls, package in public.items():
        public_name = f"{package}.{cls.__name__}"
        row = f"| `{public_name}` | `{cls.default_code}` | {cls.default_status} |"
        assert row in readme, f"the errors reference misses {row}"
