"""`buttress config --check` catches everything it can: every problem under the exact variable the user wrote
(and its .env line), all at once, unknown BUTTRESS_* variables with a "did you mean", the checks that used to
fail only later (pickle without a key, retry-on names that do not import, database URL schemes), and the
right count of variables set. Secrets are never shown."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError as PydanticValidationError

from buttress.config import Settings, check_settings, load_settings, render_check
from buttress.config._problems import problems_from_validation_error
from buttress.errors import MASK, ConfigError, ConfigProblem

ROOT = Path(__file__).parent.parent


pytestmark = pytest.mark.usefixtures("isolated_settings")  # no BUTTRESS_* or .env of the developer's


def _problems(environ: dict[str, str], env_file: Path | None = None, *, check: bool = False) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        (check_settings if check else load_settings)(env_file=env_file, environ=environ)
    return caught.value


def _by_variable(error: ConfigError) -> dict[str, ConfigProblem]:
    return {problem.variable: problem for problem in error.problems}


# --- every problem under its own variable, all at once


def test_a_bad_nested_value_is_named_and_hides_none_of_the_others() -> None:
    error = _problems(
        {
            "BUTTRESS_OBSERVE__DISK_PATHS": "/",
            "BUTTRESS_OBSERVE__SAMPLER_INTERVAL": "-1",
            "BUTTRESS_EVENTS__QUEUE_SIZE": "0",
        }
    )
    assert [p.variable for p in error.problems] == [
        "BUTTRESS_EVENTS__QUEUE_SIZE",
        "BUTTRESS_OBSERVE__SAMPLER_INTERVAL",
        "BUTTRESS_OBSERVE__DISK_PATHS",
    ]
    disk = _by_variable(error)["BUTTRESS_OBSERVE__DISK_PATHS"]
    assert disk.value == "/"
    assert disk.expected.startswith("a JSON list (Expecting value: line 1 column 1 (char 0))")
    assert disk.example == '["/", "/var/lib/app"]'


def test_a_whole_section_that_does_not_parse_is_reported_beside_the_others() -> None:
    error = _problems({"BUTTRESS_EVENTS": "{queue_size: 5}", "BUTTRESS_LOGGING__LEVEL": "loud"})
    assert [p.variable for p in error.problems] == ["BUTTRESS_LOGGING__LEVEL", "BUTTRESS_EVENTS"]
    assert _by_variable(error)["BUTTRESS_EVENTS"].expected.startswith(
        "a JSON object (Expecting property name enclosed in double quotes"
    )


def test_a_problem_from_the_env_file_names_its_line(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "# settings\nBUTTRESS_APP__NAME=orders\n\n"
        "BUTTRESS_OBSERVE__DISK_PATHS=/\nexport BUTTRESS_EVENTS__QUEUE_SIZE=0\n"
    )
    error = _problems({}, Path("app.env"))  # named as given: the working directory is tmp_path
    assert [(p.variable, p.source) for p in error.problems] == [
        ("BUTTRESS_EVENTS__QUEUE_SIZE", "app.env line 5"),
        ("BUTTRESS_OBSERVE__DISK_PATHS", "app.env line 4"),
    ]
    assert "BUTTRESS_OBSERVE__DISK_PATHS='/' (app.env line 4): a JSON list" in str(error)


def test_the_environment_wins_over_the_env_file_and_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BUTTRESS_EVENTS__QUEUE_SIZE=5\n")
    (problem,) = _problems({"BUTTRESS_EVENTS__QUEUE_SIZE": "0"}, tmp_path / ".env").problems
    assert (problem.variable, problem.value, problem.source) == ("BUTTRESS_EVENTS__QUEUE_SIZE", "0", None)


def test_the_variable_is_named_as_it_was_written() -> None:
    (problem,) = _problems({"buttress_events__queue_size": "0"}).problems
    assert problem.variable == "buttress_events__queue_size"


def test_a_value_given_inside_a_json_section_says_where() -> None:
    (problem,) = _problems({"BUTTRESS_APP": '{"name": ""}'}).problems
    assert (problem.variable, problem.source) == ("BUTTRESS_APP__NAME", "in BUTTRESS_APP")


@pytest.mark.parametrize(
    ("environ", "variable", "message"),
    [
        (
            {"BUTTRESS_OBSERVE__MEMORY_WARN_PERCENT": "90", "BUTTRESS_OBSERVE__MEMORY_FAIL_PERCENT": "50"},
            "BUTTRESS_OBSERVE__MEMORY_FAIL_PERCENT",
            "must not be below memory_warn_percent (90)",
        ),
        (
            {
                "BUTTRESS_RESILIENCE__PIPELINES__X__RETRY__INITIAL_DELAY": "5",
                "BUTTRESS_RESILIENCE__PIPELINES__X__RETRY__MAX_DELAY": "1",
            },
            "BUTTRESS_RESILIENCE__PIPELINES__X__RETRY__MAX_DELAY",
            "must not be below initial_delay (5)",
        ),
        (
            {
                "BUTTRESS_RESILIENCE__PIPELINES__X__BREAKER__OPEN_DURATION": "60",
                "BUTTRESS_RESILIENCE__PIPELINES__X__BREAKER__OPEN_DURATION_MAX": "10",
            },
            "BUTTRESS_RESILIENCE__PIPELINES__X__BREAKER__OPEN_DURATION_MAX",
            "must not be below open_duration (60)",
        ),
    ],
)
def test_a_rule_between_two_knobs_names_the_knob_to_change(
    environ: dict[str, str], variable: str, message: str
) -> None:
    (problem,) = _problems(environ).problems
    assert problem.variable == variable
    assert message in problem.expected


def test_a_host_claimed_twice_names_the_second_claim() -> None:
    environ = {
        "BUTTRESS_HTTP__POLICIES__A__HOSTS": "x.com",
        "BUTTRESS_HTTP__POLICIES__B__HOSTS": "y.com,x.com",
    }
    (problem,) = _problems(environ).problems
    assert problem == ConfigProblem(
        "BUTTRESS_HTTP__POLICIES__B__HOSTS", "x.com", "host 'x.com' is claimed by both 'a' and 'b'"
    )


# --- unknown BUTTRESS_* variables


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("BUTTRESS_REDIS_ULR", "BUTTRESS_REDIS_URL"),
        ("BUTTRESS_SERVER__JWT_ISUER", "BUTTRESS_SERVER__JWT_ISSUER"),
        ("BUTTRESS_SECURITY__ADMIN_TOKNE", "BUTTRESS_SECURITY__ADMIN_TOKEN"),
        ("BUTTRESS_CACHE__BAKCEND", "BUTTRESS_CACHE__BACKEND"),
        ("BUTTRESS_CACHE_BACKEND", "BUTTRESS_CACHE__BACKEND"),
        ("BUTTRESS_SERVR__JWT_ISSUER", "BUTTRESS_SERVER__JWT_ISSUER"),
        (
            "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ATEMPTS",
            "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ATTEMPTS",
        ),
        ("BUTTRESS_HTTP__DEFAULT__RETRI__ATTEMPTS", "BUTTRESS_HTTP__DEFAULT__RETRY__ATTEMPTS"),
    ],
)
def test_a_misspelt_variable_is_an_error_that_says_what_was_meant(written: str, meant: str) -> None:
    (problem,) = _problems({written: "hunter2-secret"}).problems
    assert problem == ConfigProblem(written, MASK, f"not a buttress setting; did you mean {meant}?")
    assert "hunter2-secret" not in str(_problems({written: "hunter2-secret"}))


def test_an_unknown_variable_far_from_any_setting_says_where_the_list_is() -> None:
    (problem,) = _problems({"BUTTRESS_ZZZ": "1"}).problems
    assert problem.expected == (
        "not a buttress setting (BUTTRESS_ names only buttress settings; `buttress config --markdown` "
        "lists them)"
    )
    (knob,) = _problems({"BUTTRESS_RESILIENCE__PIPELINES__X__BREAKER__ZZZ": "1"}).problems
    assert knob.expected.startswith(
        "not a buttress setting; the names here are ENABLED, CONSECUTIVE_FAILURES"
    )


def test_an_unknown_variable_in_the_env_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BUTTRESS_APP__NAME=orders\nBUTTRESS_REDIS_ULR=redis://u:pw@h:6379/0\n")
    (problem,) = _problems({}, Path(".env")).problems
    assert (problem.variable, problem.value, problem.source) == ("BUTTRESS_REDIS_ULR", MASK, ".env line 2")
    assert "pw@" not in str(_problems({}, Path(".env")))


def test_an_unknown_key_inside_a_json_section_is_named_too() -> None:
    (problem,) = _problems({"BUTTRESS_SERVER": '{"jwt_isuer": "https://auth"}'}).problems
    assert problem == ConfigProblem(
        "BUTTRESS_SERVER__JWT_ISUER",
        MASK,
        "not a buttress setting; did you mean BUTTRESS_SERVER__JWT_ISSUER?",
        source="in BUTTRESS_SERVER",
    )


def test_an_unknown_key_inside_a_mapping_given_as_json_is_named_too() -> None:
    (problem,) = _problems({"BUTTRESS_RESILIENCE__PIPELINES": '{"x": {"retri": {"attempts": 2}}}'}).problems
    assert problem == ConfigProblem(
        "BUTTRESS_RESILIENCE__PIPELINES__X__RETRI",
        MASK,
        "not a buttress setting; did you mean BUTTRESS_RESILIENCE__PIPELINES__X__RETRY?",
        source="in BUTTRESS_RESILIENCE__PIPELINES",
    )


def test_an_unknown_key_does_not_hide_the_other_problems_of_its_section() -> None:
    error = _problems({"BUTTRESS_CACHE__BAKCEND": "redis", "BUTTRESS_CACHE__SERIALIZER": "pickle"})
    assert [p.variable for p in error.problems] == ["BUTTRESS_CACHE__SERIALIZER", "BUTTRESS_CACHE__BAKCEND"]


def test_an_unknown_key_passed_in_code_is_named_with_a_suggestion() -> None:
    with pytest.raises(PydanticValidationError) as caught:
        Settings(_env_file=None, server={"jwt_isuer": "https://auth"})  # type: ignore[arg-type]
    (problem,) = problems_from_validation_error(caught.value, Settings)
    assert problem == ConfigProblem(
        "BUTTRESS_SERVER__JWT_ISUER",
        MASK,
        "not a buttress setting; did you mean BUTTRESS_SERVER__JWT_ISSUER?",
    )


def test_unknown_variables_are_listed_with_every_other_problem() -> None:
    error = _problems(
        {
            "BUTTRESS_REDIS_ULR": "redis://h",
            "BUTTRESS_SERVER__JWT_ISUER": "me",
            "BUTTRESS_SECURITY__ADMIN_TOKNE": "tok",
            "BUTTRESS_CACHE__BAKCEND": "tiered",
            "BUTTRESS_OBSERVE__DISK_PATHS": "/",
            "BUTTRESS_EVENTS__QUEUE_SIZE": "0",
        }
    )
    assert [p.variable for p in error.problems] == [
        "BUTTRESS_EVENTS__QUEUE_SIZE",
        "BUTTRESS_OBSERVE__DISK_PATHS",
        "BUTTRESS_REDIS_ULR",
        "BUTTRESS_SERVER__JWT_ISUER",
        "BUTTRESS_SECURITY__ADMIN_TOKNE",
        "BUTTRESS_CACHE__BAKCEND",
    ]


def test_the_test_suites_own_variables_are_not_settings() -> None:
    settings = load_settings(
        env_file=None,
        environ={"BUTTRESS_TEST_REDIS_URL": "redis://127.0.0.1:6379/9", "BUTTRESS_REQUIRE_SERVICES": "1"},
    )
    assert settings.redis_url is None


def test_an_empty_unknown_variable_counts_as_unset() -> None:
    assert load_settings(env_file=None, environ={"BUTTRESS_REDIS_ULR": ""}).redis_url is None


# --- checks that used to fail only later


def test_pickle_without_a_signing_key_is_a_problem() -> None:
    (problem,) = _problems({"BUTTRESS_CACHE__SERIALIZER": "pickle"}).problems
    assert (problem.variable, problem.value) == ("BUTTRESS_CACHE__SERIALIZER", "pickle")
    assert problem.expected == (
        "the pickle serializer needs a signing key of at least 16 bytes: set BUTTRESS_CACHE__SIGNING_KEY "
        "(or BUTTRESS_SECURITY__SECRET_KEY) or use BUTTRESS_CACHE__SERIALIZER=json or msgpack"
    )
    short = _problems({"BUTTRESS_CACHE__SERIALIZER": "pickle", "BUTTRESS_SECURITY__SECRET_KEY": "short"})
    assert [p.variable for p in short.problems] == ["BUTTRESS_CACHE__SERIALIZER"]
    assert "short" not in str(short)


@pytest.mark.parametrize(
    "key", ["BUTTRESS_CACHE__SIGNING_KEY", "BUTTRESS_SECURITY__SECRET_KEY"], ids=["signing", "secret"]
)
def test_pickle_with_a_key_is_valid(key: str) -> None:
    settings = load_settings(env_file=None, environ={"BUTTRESS_CACHE__SERIALIZER": "pickle", key: "k" * 32})
    assert settings.cache.serializer == "pickle"


def test_two_rules_broken_in_one_section_are_both_reported() -> None:
    error = _problems({"BUTTRESS_CACHE__SERIALIZER": "pickle", "BUTTRESS_CACHE__BACKEND": "redis"})
    assert [p.variable for p in error.problems] == ["BUTTRESS_CACHE__BACKEND", "BUTTRESS_CACHE__SERIALIZER"]


RETRY_ON = "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ON"


def test_a_retry_on_name_that_does_not_import_is_caught_by_the_check() -> None:
    environ = {RETRY_ON: '["builtins.ConnectionError", "nosuchmodule.Flaky", "builtins.len"]'}
    load_settings(env_file=None, environ=environ)  # startup imports them only when the pipeline is built
    error = _problems(environ, check=True)
    assert [(p.variable, p.value) for p in error.problems] == [
        (RETRY_ON, "nosuchmodule.Flaky"),
        (RETRY_ON, "builtins.len"),
    ]
    assert error.problems[0].expected == (
        "an exception class that imports here (module.Class): No module named 'nosuchmodule'"
    )
    assert error.problems[1].expected == "an exception class (module.Class): builtins.len is not one"


def test_the_check_accepts_retry_on_names_that_import() -> None:
    settings = check_settings(env_file=None, environ={RETRY_ON: '["buttress.errors.UpstreamError"]'})
    assert settings.resilience.pipelines["spotify"].retry.on == ("buttress.errors.UpstreamError",)


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/db", "mongodb://h/db", "postgresql+asyncpg://u@h/db", "sqlite+nodriver:///x.db"],
)
def test_a_database_url_scheme_buttress_cannot_use_is_a_problem(url: str) -> None:
    (problem,) = _problems({"BUTTRESS_DATABASE_URL": url}).problems
    assert problem.variable == "BUTTRESS_DATABASE_URL"
    assert problem.expected.startswith("a PostgreSQL or SQLite URL; the schemes buttress can use are ")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db",
        "postgres://u@h/db",
        "postgresql+psycopg://u@h:5432/db",
        "sqlite:///x.db",
        "sqlite+aiosqlite:///x.db",
        "SQLITE:///x.db",
    ],
)
def test_database_url_schemes_buttress_can_use(url: str) -> None:
    assert load_settings(env_file=None, environ={"BUTTRESS_DATABASE_URL": url}).database_url == url


# --- the count


def test_the_count_is_of_variables_set(tmp_path: Path) -> None:
    environ = {
        "BUTTRESS_APP__NAME": "orders",
        "BUTTRESS_TEST_REDIS_URL": "redis://127.0.0.1:6379/9",  # not a setting: not counted
        **{
            f"BUTTRESS_RESILIENCE__PIPELINES__{name}__{knob}": "3"
            for name in ("A", "B", "C")
            for knob in ("RETRY__ATTEMPTS", "BREAKER__CONSECUTIVE_FAILURES", "BULKHEAD__MAX_CONCURRENT")
        },
        "BUTTRESS_EVENTS__QUEUE_SIZE": "10",
        "BUTTRESS_LOGGING": '{"level": "DEBUG"}',
    }
    (tmp_path / ".env").write_text("BUTTRESS_EVENTS__QUEUE_SIZE=5\nBUTTRESS_APP__ENVIRONMENT=test\n")
    settings = load_settings(env_file=tmp_path / ".env", environ=environ)
    assert render_check(settings, env_file=tmp_path / ".env", environ=environ) == (
        f"OK: configuration is valid (12 set in the environment, 2 in {tmp_path / '.env'}, "
        "1 of them overridden by the environment; the rest defaults)."
    )


# --- .env.example is safe to copy


def test_env_example_copied_to_env_is_valid_and_healthy(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    settings = check_settings(env_file=tmp_path / ".env", environ={})
    assert render_check(settings, env_file=tmp_path / ".env", environ={}).startswith("OK: ")

    from buttress.composition import health_registry

    registry = health_registry(settings, disk_path=str(tmp_path))
    try:
        report = registry.run_sync()
    finally:
        registry.close()
    failed = {
        name: result for name, result in report.to_dict()["checks"].items() if result[0]["status"] == "fail"
    }
    assert failed == {}
    assert settings.server.expose_details is False  # nothing unsafe is switched on by a copy
    assert settings.server.host == "127.0.0.1"
