"""The resilience section: named pipelines set knob by knob, and errors that name the exact variable."""

from __future__ import annotations

import pytest

from buttress.config import PipelineSettings, load_settings
from buttress.errors import ConfigError
from buttress.rate import Rate


def test_named_pipelines_from_one_variable_per_knob() -> None:
    settings = load_settings(
        env_file=None,
        environ={
            "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ATTEMPTS": "5",
            "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__LIMITER__RATE": "60/minute",
            "BUTTRESS_RESILIENCE__PIPELINES__LLM__TIMEOUT": "20",
        },
    )
    spotify = settings.resilience.pipelines["spotify"]
    assert spotify.retry.attempts == 5
    assert spotify.limiter.rate == Rate(60, 60.0)  # stored parsed
    assert spotify.breaker == PipelineSettings().breaker  # untouched knobs keep their defaults
    assert settings.resilience.pipelines["llm"].timeout == 20.0


def _problems(environ: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, environ=environ)
    return {problem.variable: f"{problem.expected} | {problem.example}" for problem in caught.value.problems}


def test_a_bad_knob_is_reported_under_its_own_variable_with_an_example() -> None:
    variable = "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ATTEMPTS"
    problems = _problems({variable: "0"})
    assert list(problems) == [variable]
    assert "greater than or equal to 1 | 5" in problems[variable]


def test_an_unknown_knob_lists_the_names_that_exist() -> None:
    variable = "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__BREAKER__OPEN_SECONDS"
    problems = _problems({variable: "10"})
    assert "the names here are ENABLED, CONSECUTIVE_FAILURES" in problems[variable]


def test_a_rate_that_does_not_parse_is_explained() -> None:
    variable = "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__LIMITER__RATE"
    problems = _problems({variable: "sixty a minute"})
    assert variable in problems
    assert "60/minute" in problems[variable]


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"RETRY__INITIAL_DELAY": "5", "RETRY__MAX_DELAY": "1"}, "max_delay (1) must not be below"),
        ({"BREAKER__OPEN_DURATION": "60", "BREAKER__OPEN_DURATION_MAX": "10"}, "open_duration_max (10)"),
        ({"RETRY__ON": '["ConnectionError"]'}, "not an import path"),
    ],
)
def test_cross_knob_rules(knobs: dict[str, str], message: str) -> None:
    environ = {f"BUTTRESS_RESILIENCE__PIPELINES__X__{name}": value for name, value in knobs.items()}
    problems = _problems(environ)
    assert any(message in text for text in problems.values()), problems


def test_the_redis_store_needs_a_redis_url() -> None:
    problems = _problems({"BUTTRESS_RESILIENCE__STORE": "redis"})
    assert "BUTTRESS_REDIS_URL" in problems["BUTTRESS_RESILIENCE__STORE"]
    settings = load_settings(
        env_file=None,
        environ={"BUTTRESS_RESILIENCE__STORE": "redis", "BUTTRESS_REDIS_URL": "redis://127.0.0.1:6379/0"},
    )
    assert settings.resilience.store == "redis"
