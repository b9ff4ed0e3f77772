"""Named pipelines, the store and the breaker registry built from settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from buttress.composition import health_registry
from buttress.config import reset_settings
from buttress.errors import ConfigError, ValidationError
from buttress.resilience import get_breakers, get_pipeline, get_resilience_store, reset_resilience


@pytest.fixture(autouse=True)
def _fresh(isolated_settings: None) -> Iterator[None]:
    reset_resilience()
    yield
    reset_resilience()


def _configure(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"BUTTRESS_{name}", value)
    reset_settings()
    reset_resilience()


def test_an_unconfigured_name_is_refused_with_the_configured_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match=r"configured: none\)\. .*defaults=True") as caught:
        get_pipeline("anything")
    assert caught.value.field == "name"
    _configure(
        monkeypatch,
        RESILIENCE__PIPELINES__SPOTIFY__RETRY__ATTEMPTS="5",
        RESILIENCE__PIPELINES__PAYMENTS__TIMEOUT="2",
    )
    with pytest.raises(ValidationError) as caught:
        get_pipeline("spotfy")
    message = str(caught.value)
    assert "no pipeline named 'spotfy' is configured (configured: 'payments', 'spotify')" in message
    assert "did you mean 'spotify'?" in message
    assert "BUTTRESS_RESILIENCE__PIPELINES__SPOTFY__" in message
    assert "get_pipeline('spotfy', defaults=True)" in message
    assert get_pipeline("Spotify") is get_pipeline("Spotify")  # names match the settings case-insensitively
    assert get_pipeline("spotify").retry.attempts == 5  # type: ignore[union-attr]
    get_pipeline("spotfy", defaults=True)
    with pytest.raises(ValidationError):
        get_pipeline("spotfy")  # asking once with defaults=True does not configure the name
    for bad in ("", "two words", None):
        with pytest.raises(ValidationError) as caught:
            get_pipeline(bad)  # type: ignore[arg-type]
        assert caught.value.field == "name"
    with pytest.raises(ValidationError) as caught:
        get_pipeline("other", defaults="yes")  # type: ignore[arg-type]
    assert caught.value.field == "defaults"


def test_an_unconfigured_name_gets_the_safe_defaults_on_request() -> None:
    pipeline = get_pipeline("anything", defaults=True)
    assert pipeline.retry is not None
    assert (pipeline.retry.attempts, pipeline.retry.deadline) == (3, 30.0)
    assert pipeline.retry.budget is not None
    assert pipeline.breaker is not None
    assert pipeline.breaker.is_local
    assert (pipeline.limiter, pipeline.bulkhead, pipeline.timeout) == (None, None, None)
    assert get_pipeline("anything", defaults=True) is pipeline
    assert get_resilience_store() is None


def test_every_knob_reaches_its_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = "RESILIENCE__PIPELINES__SPOTIFY__"
    _configure(
        monkeypatch,
        **{
            prefix + "RETRY__ATTEMPTS": "5",
            prefix + "RETRY__ON": '["builtins.ConnectionError", "buttress.errors.RateLimited"]',
            prefix + "RETRY__BUDGET_RATIO": "",
            prefix + "BREAKER__ENABLED": "false",
            prefix + "LIMITER__RATE": "60/minute",
            prefix + "LIMITER__BURST": "10",
            prefix + "BULKHEAD__MAX_CONCURRENT": "4",
            prefix + "TIMEOUT": "2.5",
        },
    )
    pipeline = get_pipeline("spotify")
    assert pipeline.retry is not None
    assert pipeline.retry.attempts == 5
    assert pipeline.breaker is None
    assert pipeline.limiter is not None
    assert pipeline.limiter.snapshot().burst == 10
    assert pipeline.bulkhead is not None
    assert pipeline.bulkhead.max_concurrent == 4
    assert pipeline.timeout is not None
    assert "limiter='spotify'" in repr(pipeline)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError
        return "ok"

    pipeline = pipeline.replace(retry=pipeline.retry.__class__(on=ConnectionError, attempts=5, deadline=None))
    assert pipeline.call(flaky) == "ok"


def test_an_exception_path_that_does_not_import_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(monkeypatch, RESILIENCE__PIPELINES__X__RETRY__ON='["nowhere.Missing", "builtins.len"]')
    with pytest.raises(ConfigError) as caught:
        get_pipeline("x")
    problem = caught.value.problems[0]
    assert problem.variable == "BUTTRESS_RESILIENCE__PIPELINES__X__RETRY__ON"
    assert problem.value == "nowhere.Missing"
    _configure(monkeypatch, RESILIENCE__PIPELINES__X__RETRY__ON='["builtins.len"]')
    with pytest.raises(ConfigError, match="exception classes"):
        get_pipeline("x")


def test_the_redis_store_is_shared_and_reported_in_health(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    _configure(
        monkeypatch,
        REDIS_URL=redis_url,
        RESILIENCE__STORE="redis",
        RESILIENCE__PREFIX="test-defaults",
        RESILIENCE__REDIS_POLICY="closed",
    )
    store = get_resilience_store()
    assert store is not None
    assert store.policy == "closed"
    pipeline = get_pipeline("shared", defaults=True)
    assert pipeline.breaker is not None
    assert not pipeline.breaker.is_local
    breaker = get_breakers().get("api.example.com")
    assert not breaker.is_local
    assert get_breakers().get("api.example.com") is breaker
    report = health_registry().run_sync()
    check = report.to_dict()["checks"]["resilience_store"][0]
    assert check["status"] == "pass"
    reset_resilience()
    assert get_resilience_store() is not store


def test_health_has_no_store_check_with_the_memory_store() -> None:
    report = health_registry().run_sync()
    assert "resilience_store" not in report.to_dict()["checks"]
