"""The config package's own rules: one table of "this backend needs that URL", values stored parsed, and
section modules that import no capability."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import buttress.config
from buttress.config import HttpSettings, LimiterSettings, PipelineSettings, describe_settings, load_settings
from buttress.config._rules import URL_RULES, NeedsUrl
from buttress.errors import ConfigError, ConfigProblem
from buttress.rate import Rate

CASES = [(rule, value) for rule in URL_RULES for value in sorted(rule.values)]


def _case_id(case: tuple[NeedsUrl, str]) -> str:
    return f"{case[0].variable}={case[1]}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_a_backend_without_its_url_is_one_problem_naming_the_variable_and_the_fix(
    case: tuple[NeedsUrl, str],
) -> None:
    rule, value = case
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, environ={rule.variable: value})
    (problem,) = caught.value.problems
    assert problem.variable == rule.variable
    assert problem.value == value
    assert f"set {rule.url_variable} (for example " in problem.expected  # the fix, with an example
    assert problem.expected.endswith(f"or use {rule.variable}={rule.fallback}")  # or the way back


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_the_same_backend_with_its_url_is_valid(case: tuple[NeedsUrl, str]) -> None:
    rule, value = case
    url = {"redis_url": "redis://127.0.0.1:6379/0", "database_url": "sqlite:///x.db"}[rule.url]
    settings = load_settings(env_file=None, environ={rule.variable: value, rule.url_variable: url})
    section = getattr(settings, rule.path[0])
    assert getattr(section, rule.path[1]) == value


def test_every_rule_names_a_real_setting_a_known_url_and_a_value_it_allows() -> None:
    variables = {field.variable: field for field in buttress.config.setting_fields()}
    for rule in URL_RULES:
        field = variables[rule.variable]
        assert rule.values <= set(field.choices), rule
        assert field.default not in rule.values, rule  # the defaults never need a server
        assert rule.url_variable in variables, rule


def test_each_section_breaking_a_rule_is_reported_beside_the_others() -> None:
    environ = {rule.variable: sorted(rule.values)[0] for rule in URL_RULES}
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, environ={**environ, "BUTTRESS_DATABASE_URL": "nope"})
    assert [p.variable for p in caught.value.problems] == [
        "BUTTRESS_DATABASE_URL",
        *(rule.variable for rule in URL_RULES),
    ]


def test_the_cache_rule_names_the_backend_chosen() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, environ={"BUTTRESS_CACHE__BACKEND": "tiered"})
    assert list(caught.value.problems) == [
        ConfigProblem(
            "BUTTRESS_CACHE__BACKEND",
            "tiered",
            "the tiered cache backend needs a Redis server: set BUTTRESS_REDIS_URL (for example "
            "redis://127.0.0.1:6379/0) or use BUTTRESS_CACHE__BACKEND=auto or memory",
        )
    ]


# --- values stored parsed --------------------------------------------------------------------------------


def test_a_rate_is_stored_as_a_parsed_rate() -> None:
    settings = load_settings(
        env_file=None,
        environ={
            "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__LIMITER__RATE": "60/90s",
            "BUTTRESS_HTTP__DEFAULT__LIMITER__RATE": "100 per hour",
        },
    )
    assert settings.resilience.pipelines["spotify"].limiter.rate == Rate(60, 90.0)
    assert settings.http.default.limiter.rate == Rate(100, 3600.0)
    assert LimiterSettings(rate=Rate(5, 1.0)).rate == Rate(5, 1.0)  # a Rate in code is taken as it is


def test_a_stored_rate_is_written_back_as_text_that_loads_again() -> None:
    pipeline = PipelineSettings.model_validate({"limiter": {"rate": "120/2m"}})
    assert pipeline.limiter.rate == Rate(120, 120.0)
    dumped = pipeline.model_dump()
    assert dumped["limiter"]["rate"] == "120/120s"
    assert json.loads(pipeline.model_dump_json())["limiter"]["rate"] == "120/120s"
    assert PipelineSettings.model_validate(dumped) == pipeline
    assert PipelineSettings.model_validate(pipeline.model_dump()) == pipeline


def test_a_named_http_policy_inherits_the_default_rate_parsed() -> None:
    http = HttpSettings.model_validate(
        {"default": {"limiter": {"rate": "10/s"}}, "policies": {"x": {"hosts": ["x.example.com"]}}}
    )
    assert http.policies["x"].limiter.rate == Rate(10, 1.0)


def test_a_rate_is_shown_as_config_text() -> None:
    environ = {"BUTTRESS_HTTP__DEFAULT__LIMITER__RATE": "60/minute"}
    settings = load_settings(env_file=None, environ=environ)
    rows = {row.variable: row for row in describe_settings(settings, env_file=None, environ=environ)}
    assert rows["BUTTRESS_HTTP__DEFAULT__LIMITER__RATE"].value == "60/minute"
    assert rows["BUTTRESS_HTTP__DEFAULT__LIMITER__RATE"].source == "env"


def test_a_rate_that_is_not_text_is_explained() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, environ={"BUTTRESS_HTTP": '{"default": {"limiter": {"rate": 60}}}'})
    (problem,) = caught.value.problems
    assert problem.variable == "BUTTRESS_HTTP__DEFAULT__LIMITER__RATE"
    assert "rate must be a Rate or text like" in problem.expected


def test_the_public_names_are_curated() -> None:
    assert buttress.config.__all__ == [
        "DATABASE_SCHEMES",
        "ENV_PREFIX",
        "NESTED_DELIMITER",
        "AppSettings",
        "BreakerSettings",
        "BulkheadSettings",
        "CacheSettings",
        "DbSettings",
        "EventsSettings",
        "FilesSettings",
        "HttpBulkheadSettings",
        "HttpHostPolicySettings",
        "HttpPolicySettings",
        "HttpRetrySettings",
        "HttpSettings",
        "HttpTimeoutSettings",
        "JobsSettings",
        "LimiterSettings",
        "LoggingSettings",
        "ObserveSettings",
        "PipelineSettings",
        "RealtimeSettings",
        "ResilienceSettings",
        "RetrySettings",
        "SecuritySettings",
        "ServerSettings",
        "SettingField",
        "SettingValue",
        "Settings",
        "Source",
        "check_settings",
        "describe_settings",
        "env_var_name",
        "get_settings",
        "load_settings",
        "mask_url_password",
        "render_check",
        "render_config_table",
        "render_env_example",
        "reset_settings",
        "setting_fields",
    ]
    for name in buttress.config.__all__:
        assert getattr(buttress.config, name) is not None


# --- layering --------------------------------------------------------------------------------------------

CAPABILITIES = ("cache", "resilience", "http", "server", "events", "observe", "demo", "container", "testing")


def test_config_imports_no_capability() -> None:
    """Sections are plain pydantic models: the capabilities import config, never the other way round."""
    package = Path(buttress.config.__file__).parent
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                assert not (parts[0] == "buttress" and len(parts) > 1 and parts[1] in CAPABILITIES), (
                    f"{module.name} imports {name}"
                )


def test_each_config_module_stays_small() -> None:
    package = Path(buttress.config.__file__).parent
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in package.glob("*.py")}
    assert max(sizes.values()) <= 300, sizes
