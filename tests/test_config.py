"""The settings tree: sources and their priority, every error path, sources shown, rendered docs in sync."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from dotenv import dotenv_values
from pydantic import BaseModel, ByteSize, Field, SecretStr, TypeAdapter, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsError

import buttress.config._load as loading_module
from buttress.config import (
    AppSettings,
    EventsSettings,
    PipelineSettings,
    Settings,
    describe_settings,
    env_var_name,
    get_settings,
    load_settings,
    mask_url_password,
    render_config_table,
    render_env_example,
    reset_settings,
    setting_fields,
)
from buttress.config._problems import problem_from_settings_error, problems_from_validation_error
from buttress.config._sources import RawSources
from buttress.errors import MASK, ButtressError, ConfigError, ConfigProblem
from buttress.rate import Rate

ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No BUTTRESS_* variable and no .env of the developer's leaks in; the cache starts and ends empty."""
    for name in list(os.environ):
        if name.upper().startswith("BUTTRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    reset_settings()
    yield
    reset_settings()


def _problems(environ: dict[str, str], env_file: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=env_file, environ=environ)
    return caught.value


# --- values and where they are read from --------------------------------------------------------------------


def test_defaults_when_nothing_is_set() -> None:
    settings = load_settings(env_file=None, environ={})
    assert settings.app.name == "buttress"
    assert settings.app.environment == "development"
    assert settings.redis_url is None
    assert settings.database_url is None
    assert settings.logging.level == "INFO"
    assert settings.logging.format == "console"
    assert settings.events.transport == "memory"
    assert settings.events.queue_size == 1000
    assert settings.events.prefix == "buttress:events"
    assert settings.security.secret_key is None
    assert settings.security.admin_token is None


def test_environment_variables_any_case_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_APP__NAME", "orders")
    monkeypatch.setenv("buttress_events__queue_size", "42")
    monkeypatch.setenv("BUTTRESS_SECURITY__SECRET_KEY", "s3cret-value")
    settings = load_settings()
    assert settings.app.name == "orders"
    assert settings.events.queue_size == 42
    assert isinstance(settings.security.secret_key, SecretStr)
    assert settings.security.secret_key.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)


def test_environ_argument_replaces_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_APP__NAME", "from-os")
    assert load_settings(environ={}).app.name == "buttress"
    assert load_settings(environ={"BUTTRESS_APP__NAME": "from-mapping"}).app.name == "from-mapping"
    assert load_settings().app.name == "from-os"  # the override does not outlive the call


def test_dotenv_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BUTTRESS_APP__NAME=from-dotenv\nBUTTRESS_EVENTS__QUEUE_SIZE=7\n")
    monkeypatch.setenv("BUTTRESS_EVENTS__QUEUE_SIZE", "9")
    settings = load_settings()
    assert settings.app.name == "from-dotenv"
    assert settings.events.queue_size == 9


def test_env_file_path_is_overridable_and_none_skips_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BUTTRESS_APP__NAME=default-file\n")
    other = tmp_path / "conf" / "prod.env"
    other.parent.mkdir()
    other.write_text("BUTTRESS_APP__NAME=other-file\n")
    assert load_settings(env_file=other).app.name == "other-file"
    assert load_settings(env_file=str(other)).app.name == "other-file"
    assert load_settings(env_file=None).app.name == "buttress"
    assert load_settings(env_file=tmp_path / "absent.env").app.name == "buttress"


def test_whole_section_as_json() -> None:
    settings = load_settings(environ={"BUTTRESS_EVENTS": '{"queue_size": 5, "prefix": "x"}'})
    assert settings.events == EventsSettings(queue_size=5, prefix="x")


def test_empty_value_counts_as_unset() -> None:
    settings = load_settings(environ={"BUTTRESS_REDIS_URL": "", "BUTTRESS_APP__NAME": ""})
    assert settings.redis_url is None
    assert settings.app.name == "buttress"


@pytest.mark.parametrize(
    ("raw", "level"), [("debug", "DEBUG"), (" Warning ", "WARNING"), ("CRITICAL", "CRITICAL")]
)
def test_log_level_in_any_case(raw: str, level: str) -> None:
    assert load_settings(environ={"BUTTRESS_LOGGING__LEVEL": raw}).logging.level == level


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://u:p@cache:6380", "unix:///run/redis.sock"]
)
def test_redis_url_schemes_accepted(url: str) -> None:
    assert load_settings(environ={"BUTTRESS_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    "url", ["sqlite:///jobs.db", "postgresql+psycopg://app@db:5432/app", "postgresql://x/y"]
)
def test_database_urls_accepted(url: str) -> None:
    assert load_settings(environ={"BUTTRESS_DATABASE_URL": url}).database_url == url


def test_redis_transport_with_redis_url_is_valid() -> None:
    settings = load_settings(
        environ={"BUTTRESS_EVENTS__TRANSPORT": "redis", "BUTTRESS_REDIS_URL": "redis://127.0.0.1:6379/0"}
    )
    assert settings.events.transport == "redis"


def test_settings_are_immutable() -> None:
    settings = load_settings(environ={})
    with pytest.raises(PydanticValidationError, match="frozen"):
        settings.redis_url = "redis://elsewhere"  # type: ignore[misc]
    assert settings.model_copy(update={"redis_url": "redis://h"}).redis_url == "redis://h"


# --- errors: every bad variable, named, masked, with an example ---------------------------------------------


def test_every_bad_variable_is_reported_at_once() -> None:
    error = _problems(
        {
            "BUTTRESS_REDIS_URL": "http://cache:6379",
            "BUTTRESS_DATABASE_URL": "nope",
            "BUTTRESS_LOGGING__LEVEL": "loud",
            "BUTTRESS_LOGGING__FORMAT": "xml",
            "BUTTRESS_EVENTS__QUEUE_SIZE": "0",
            "BUTTRESS_APP__ENVIRONMENT": "prod",
        }
    )
    assert isinstance(error, ButtressError)
    assert error.error_code == "config_invalid"
    assert [p.variable for p in error.problems] == [
        "BUTTRESS_APP__ENVIRONMENT",
        "BUTTRESS_REDIS_URL",
        "BUTTRESS_DATABASE_URL",
        "BUTTRESS_LOGGING__LEVEL",
        "BUTTRESS_LOGGING__FORMAT",
        "BUTTRESS_EVENTS__QUEUE_SIZE",
    ]
    assert error.context["problems"] == [p.variable for p in error.problems]
    assert str(error).splitlines() == [
        "Invalid buttress configuration",
        (
            "  - BUTTRESS_APP__ENVIRONMENT='prod': Input should be 'development', 'test', 'staging' or "
            "'production' (example: BUTTRESS_APP__ENVIRONMENT=production)"
        ),
        (
            "  - BUTTRESS_REDIS_URL='http://cache:6379': a URL starting with redis://, rediss://, "
            "unix://, redis+sentinel:// or redis+cluster:// (example: BUTTRESS_REDIS_URL=redis://127.0.0.1:6379/0)"
        ),
        (
            "  - BUTTRESS_DATABASE_URL='nope': a SQLAlchemy URL such as "
            "postgresql+psycopg://user@host:5432/db or sqlite:///path/to/file.db "
            "(example: BUTTRESS_DATABASE_URL=postgresql+psycopg://app@127.0.0.1:5432/app)"
        ),
        (
            "  - BUTTRESS_LOGGING__LEVEL='LOUD': Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or "
            "'CRITICAL' (example: BUTTRESS_LOGGING__LEVEL=DEBUG)"
        ),
        (
            "  - BUTTRESS_LOGGING__FORMAT='xml': Input should be 'console' or 'json' "
            "(example: BUTTRESS_LOGGING__FORMAT=json)"
        ),
        (
            "  - BUTTRESS_EVENTS__QUEUE_SIZE='0': Input should be greater than or equal to 1 "
            "(example: BUTTRESS_EVENTS__QUEUE_SIZE=5000)"
        ),
    ]


def test_not_an_integer() -> None:
    (problem,) = _problems({"BUTTRESS_EVENTS__QUEUE_SIZE": "many"}).problems
    assert problem == ConfigProblem(
        "BUTTRESS_EVENTS__QUEUE_SIZE",
        "many",
        "Input should be a valid integer, unable to parse string as an integer",
        "5000",
    )


def test_empty_name_is_rejected_when_given_in_json() -> None:
    (problem,) = _problems({"BUTTRESS_APP": '{"name": ""}'}).problems
    assert problem.variable == "BUTTRESS_APP__NAME"
    assert problem.expected == "String should have at least 1 character"


def test_password_in_a_bad_url_is_masked() -> None:
    error = _problems({"BUTTRESS_REDIS_URL": "http://user:hunter2@cache:6379/0"})
    assert error.problems[0].value == f"http://user:{MASK}@cache:6379/0"
    assert "hunter2" not in str(error)


def test_redis_transport_without_redis_url_names_both_variables_and_the_fix() -> None:
    (problem,) = _problems({"BUTTRESS_EVENTS__TRANSPORT": "redis"}).problems
    assert problem.variable == "BUTTRESS_EVENTS__TRANSPORT"
    assert problem.value == "redis"
    assert problem.expected == (
        "the redis transport needs a Redis server: set BUTTRESS_REDIS_URL (for example "
        "redis://127.0.0.1:6379/0) or use BUTTRESS_EVENTS__TRANSPORT=memory"
    )


def test_cross_field_problem_is_reported_with_the_other_problems() -> None:
    error = _problems({"BUTTRESS_EVENTS__TRANSPORT": "redis", "BUTTRESS_DATABASE_URL": "nope"})
    assert [p.variable for p in error.problems] == ["BUTTRESS_DATABASE_URL", "BUTTRESS_EVENTS__TRANSPORT"]


def test_invalid_redis_url_is_not_also_reported_as_missing() -> None:
    error = _problems({"BUTTRESS_EVENTS__TRANSPORT": "redis", "BUTTRESS_REDIS_URL": "http://x"})
    assert [p.variable for p in error.problems] == ["BUTTRESS_REDIS_URL"]


def test_secret_values_are_masked_in_errors() -> None:
    error = _problems({"BUTTRESS_SECURITY": '{"secret_key": 918273645, "admin_token": ["tok-value"]}'})
    assert [(p.variable, p.value) for p in error.problems] == [
        ("BUTTRESS_SECURITY__SECRET_KEY", MASK),
        ("BUTTRESS_SECURITY__ADMIN_TOKEN", MASK),
    ]
    assert error.problems[0].example == "<long random string>"
    assert "918273645" not in str(error)
    assert "tok-value" not in str(error)


def test_section_that_is_not_an_object() -> None:
    (problem,) = _problems({"BUTTRESS_EVENTS": "5"}).problems
    assert problem == ConfigProblem(
        "BUTTRESS_EVENTS",
        "5",
        "a JSON object with the keys transport, queue_size, prefix, or one variable per key",
        '{"transport": "redis", "queue_size": 5000, "prefix": "orders:events"}',
    )


def test_secret_section_that_is_not_an_object_is_masked() -> None:
    (problem,) = _problems({"BUTTRESS_SECURITY": '["hunter2"]'}).problems
    assert (problem.variable, problem.value) == ("BUTTRESS_SECURITY", MASK)


def test_section_json_that_does_not_parse() -> None:
    (problem,) = _problems({"BUTTRESS_EVENTS": "{queue_size: 5}"}).problems
    assert problem.variable == "BUTTRESS_EVENTS"
    assert problem.value == "{queue_size: 5}"
    assert problem.expected == (
        "a JSON object (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)), "
        "or one variable per key such as BUTTRESS_EVENTS__TRANSPORT"
    )
    assert problem.example is not None
    assert json.loads(problem.example)["queue_size"] == 5000


def test_section_json_that_does_not_parse_in_dotenv_with_secrets_masked(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('BUTTRESS_SECURITY=\'{"secret_key": "hunter2"\'\n')
    error = _problems({}, env_file=tmp_path / ".env")
    assert [(p.variable, p.value) for p in error.problems] == [("BUTTRESS_SECURITY", MASK)]
    assert "hunter2" not in str(error)


def test_settings_error_without_a_field_name() -> None:
    problem = problem_from_settings_error(SettingsError("something odd"), Settings, RawSources({}, {}))
    assert problem.variable == "BUTTRESS_"
    assert problem.value is None
    assert problem.expected.startswith("a JSON object (something odd)")


def test_missing_required_field_has_no_value() -> None:
    class Required(BaseSettings):
        token: str = Field(description="Needed.", examples=["abc"])

    with pytest.raises(PydanticValidationError) as caught:
        Required()
    (problem,) = problems_from_validation_error(caught.value, Required)
    assert problem == ConfigProblem("BUTTRESS_TOKEN", None, "Field required", "abc")
    assert problem.describe() == "BUTTRESS_TOKEN=<missing>: Field required (example: BUTTRESS_TOKEN=abc)"


# --- the process-wide instance ------------------------------------------------------------------------------


def test_get_settings_is_cached_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_APP__NAME", "first")
    settings = get_settings()
    monkeypatch.setenv("BUTTRESS_APP__NAME", "second")
    assert get_settings() is settings
    reset_settings()
    assert get_settings().app.name == "second"


def test_get_settings_loads_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_load = loading_module.load_settings

    def slow_load() -> Settings:
        calls.append(1)
        time.sleep(0.05)  # widen the window in which a second loader could slip in
        return real_load()

    monkeypatch.setattr(loading_module, "load_settings", slow_load)
    barrier = threading.Barrier(16)
    seen: list[Settings] = []

    def worker() -> None:
        barrier.wait()
        seen.append(get_settings())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(seen) == 16
    assert all(item is seen[0] for item in seen)


def test_get_settings_does_not_cache_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_EVENTS__QUEUE_SIZE", "-1")
    with pytest.raises(ConfigError, match="BUTTRESS_EVENTS__QUEUE_SIZE='-1'"):
        get_settings()
    monkeypatch.setenv("BUTTRESS_EVENTS__QUEUE_SIZE", "3")
    assert get_settings().events.queue_size == 3


# --- where each value came from -----------------------------------------------------------------------------


def _sources(settings: Settings, **kwargs: object) -> dict[str, tuple[object, str]]:
    return {row.variable: (row.value, row.source) for row in describe_settings(settings, **kwargs)}  # type: ignore[arg-type]


def test_describe_reports_default_env_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "BUTTRESS_APP__NAME=from-dotenv\n"
        "BUTTRESS_EVENTS__QUEUE_SIZE=7\n"
        'BUTTRESS_LOGGING={"format": "json"}\n'
        "BUTTRESS_DATABASE_URL=\n"
    )
    monkeypatch.setenv("buttress_events__queue_size", "9")  # any case, and it beats .env
    monkeypatch.setenv("BUTTRESS_REDIS_URL", "redis://app:hunter2@cache:6379/0")
    monkeypatch.setenv("BUTTRESS_SECURITY__ADMIN_TOKEN", "tok-value")
    monkeypatch.setenv("BUTTRESS_EVENTS", '{"prefix": "orders"}')
    monkeypatch.setenv("BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__TIMEOUT", "2.5")
    rows = _sources(load_settings())
    pipelines = rows.pop("BUTTRESS_RESILIENCE__PIPELINES")
    assert pipelines[1] == "env"  # set knob by knob, below the mapping's own variable
    assert json.loads(str(pipelines[0]))["spotify"]["timeout"] == 2.5
    http = {name: rows.pop(name) for name in list(rows) if name.startswith("BUTTRESS_HTTP__")}
    assert http["BUTTRESS_HTTP__DEFAULT__RETRY__ATTEMPTS"] == (3, "default")
    assert http["BUTTRESS_HTTP__MAX_CONNECTIONS"] == (100, "default")
    cache = {name: rows.pop(name) for name in list(rows) if name.startswith("BUTTRESS_CACHE__")}
    assert cache["BUTTRESS_CACHE__BACKEND"] == ("auto", "default")
    assert cache["BUTTRESS_CACHE__SIGNING_KEY"] == (None, "default")
    db = {name: rows.pop(name) for name in list(rows) if name.startswith("BUTTRESS_DB__")}
    assert db["BUTTRESS_DB__POOL_SIZE"] == (5, "default")
    assert db["BUTTRESS_DB__STATEMENT_TIMEOUT"] == (30.0, "default")
    assert db["BUTTRESS_DB__POOLER"] == ("none", "default")
    jobs = {name: rows.pop(name) for name in list(rows) if name.startswith("BUTTRESS_JOBS__")}
    assert jobs["BUTTRESS_JOBS__LEASE"] == (30.0, "default")
    assert jobs["BUTTRESS_JOBS__LISTEN_URL"] == (None, "default")
    assert len(jobs) == 12
    files = {name: rows.pop(name) for name in list(rows) if name.startswith("BUTTRESS_FILES__")}
    assert files["BUTTRESS_FILES__MAX_SIZE"] == (100 * 1024 * 1024, "default")
    assert files["BUTTRESS_FILES__ALLOWED_TYPES"] == ("[]", "default")
    realtime = {name: rows.pop(name) for name in list(rows) if name.startswith("BUTTRESS_REALTIME__")}
    assert realtime["BUTTRESS_REALTIME__RECORD"] == ('["**"]', "default")
    assert realtime["BUTTRESS_REALTIME__OVERFLOW"] == ("gap", "default")
    assert len(files) == 13
    assert rows == {
        "BUTTRESS_APP__NAME": ("from-dotenv", ".env"),
        "BUTTRESS_APP__ENVIRONMENT": ("development", "default"),
        "BUTTRESS_REDIS_URL": (f"redis://app:{MASK}@cache:6379/0", "env"),
        "BUTTRESS_DATABASE_URL": (None, "default"),
        "BUTTRESS_LOGGING__LEVEL": ("INFO", "default"),
        "BUTTRESS_LOGGING__FORMAT": ("json", ".env"),
        "BUTTRESS_EVENTS__TRANSPORT": ("memory", "default"),
        "BUTTRESS_EVENTS__QUEUE_SIZE": (9, "env"),
        "BUTTRESS_EVENTS__PREFIX": ("orders", "env"),
        "BUTTRESS_SECURITY__SECRET_KEY": (None, "default"),
        "BUTTRESS_SECURITY__ADMIN_TOKEN": (MASK, "env"),
        "BUTTRESS_SERVER__HOST": ("127.0.0.1", "default"),
        "BUTTRESS_SERVER__PORT": (8765, "default"),
        "BUTTRESS_SERVER__JWT_ALGORITHM": ("HS256", "default"),
        "BUTTRESS_SERVER__JWT_KEY": (None, "default"),
        "BUTTRESS_SERVER__JWT_AUDIENCE": (None, "default"),
        "BUTTRESS_SERVER__JWT_ISSUER": (None, "default"),
        "BUTTRESS_SERVER__EXPOSE_DETAILS": (False, "default"),
        "BUTTRESS_OBSERVE__SAMPLER_INTERVAL": (15.0, "default"),
        "BUTTRESS_OBSERVE__DISK_PATHS": ('["/"]', "default"),  # lists are shown as JSON
        "BUTTRESS_OBSERVE__MEMORY_WARN_PERCENT": (90.0, "default"),
        "BUTTRESS_OBSERVE__MEMORY_FAIL_PERCENT": (95.0, "default"),
        "BUTTRESS_OBSERVE__DISK_WARN_PERCENT": (90.0, "default"),
        "BUTTRESS_OBSERVE__DISK_FAIL_PERCENT": (95.0, "default"),
        "BUTTRESS_OBSERVE__PROFILER_ENABLED": (False, "default"),
        "BUTTRESS_RESILIENCE__STORE": ("memory", "default"),
        "BUTTRESS_RESILIENCE__REDIS_POLICY": ("local", "default"),
        "BUTTRESS_RESILIENCE__PREFIX": ("buttress", "default"),
    }


def test_describe_with_an_explicit_environ_and_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text("BUTTRESS_APP__ENVIRONMENT=staging\n")
    environ = {"BUTTRESS_SECURITY__SECRET_KEY": "k" * 40}
    settings = load_settings(env_file=env_file, environ=environ)
    rows = _sources(settings, env_file=env_file, environ=environ)
    assert rows["BUTTRESS_APP__ENVIRONMENT"] == ("staging", ".env")
    assert rows["BUTTRESS_SECURITY__SECRET_KEY"] == (MASK, "env")
    secrets = [row.secret for row in describe_settings(settings, environ=environ) if row.secret]
    assert secrets == [True, True, True, True, True]


def test_describe_marks_values_passed_in_code_as_init() -> None:
    settings = Settings(app=AppSettings(name="in-code"), _env_file=None)
    rows = _sources(settings, env_file=None, environ={})
    assert rows["BUTTRESS_APP__NAME"] == ("in-code", "init")
    assert rows["BUTTRESS_APP__ENVIRONMENT"] == ("development", "default")


@pytest.mark.parametrize("section", ["{not json", "5", '{"queue_size": null}', '{"transport": "memory"}'])
def test_describe_ignores_sections_that_do_not_set_the_leaf(section: str) -> None:
    rows = _sources(Settings(_env_file=None), env_file=None, environ={"BUTTRESS_EVENTS": section})
    assert rows["BUTTRESS_EVENTS__QUEUE_SIZE"] == (1000, "default")


# --- masking ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("redis://user:pw@host:6379/0", f"redis://user:{MASK}@host:6379/0"),
        ("redis://:pw@host", f"redis://:{MASK}@host"),
        ("postgresql+psycopg://app:p@ss@db/x", f"postgresql+psycopg://app:{MASK}@db/x"),
        ("a redis://u:1@h and amqp://v:2@k", f"a redis://u:{MASK}@h and amqp://v:{MASK}@k"),
        ("http://host:8080/path", "http://host:8080/path"),
        ("redis://user@host", "redis://user@host"),
        ("no url here: user:pw@host", "no url here: user:pw@host"),
    ],
)
def test_mask_url_password(text: str, masked: str) -> None:
    assert mask_url_password(text) == masked


# --- the tree's metadata and the documents rendered from it -------------------------------------------------


def test_every_leaf_has_a_description_and_an_example() -> None:
    fields = setting_fields()
    assert len(fields) == 139
    for field in (*fields, *setting_fields(PipelineSettings)):  # the knobs inside each named pipeline too
        assert field.info.description, f"{field.variable} needs Field(description=...)"
        assert field.info.examples, f"{field.variable} needs Field(examples=[...])"
        assert field.variable == env_var_name(field.path)


def test_examples_are_valid_values(tmp_path: Path) -> None:
    """The examples load as .env.example writes them, uncommented (so the docs never show a bad value)."""
    (tmp_path / "uncommented.env").write_text(_uncommented(render_env_example()), encoding="utf-8")
    settings = load_settings(env_file=tmp_path / "uncommented.env")
    for field in setting_fields():
        value: object = settings
        for name in field.path:
            value = getattr(value, name)
        expected = None if field.secret else field.info.examples[0]  # type: ignore[index]
        if isinstance(value, dict):  # a mapping of models (pipelines, policies): what the example sets
            value = {key: _only(item.model_dump(), expected[key]) for key, item in value.items()}  # type: ignore[index]
        if isinstance(value, tuple):  # list settings are kept as tuples (frozen)
            value = list(value)
        if isinstance(value, Rate):  # stored parsed, written back as the text it was read from
            value = value.to_text()
        if isinstance(value, ByteSize):  # "500MB" is stored as its number of bytes
            expected = TypeAdapter(ByteSize).validate_python(expected)
        assert value == expected, field.variable


def _uncommented(example: str) -> str:
    """.env.example with every variable's line switched on, as a user who uncomments them all gets it."""
    return "\n".join(
        line.removeprefix("# ") if line.startswith("# BUTTRESS_") else line for line in example.splitlines()
    )


def _only(dumped: dict[str, object], example: dict[str, object]) -> dict[str, object]:
    """The values of ``dumped`` at the example's keys (a named HTTP policy also inherits the default's)."""
    picked: dict[str, object] = {}
    for key, wanted in example.items():
        value = dumped[key]
        if isinstance(wanted, dict) and isinstance(value, dict):
            value = _only(value, wanted)
        elif isinstance(wanted, list) and isinstance(value, tuple):
            value = list(value)
        picked[key] = value
    return picked


def test_env_example_file_is_in_sync() -> None:
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == render_env_example()


def test_settings_reference_table_is_in_sync() -> None:
    readme = (ROOT / "docs" / "reference" / "settings.md").read_text(encoding="utf-8")
    between = readme.split("<!-- config-table:start -->")[1].split("<!-- config-table:end -->")[0]
    assert between == "\n" + render_config_table()
    knobs = readme.split("<!-- pipeline-table:start -->")[1].split("<!-- pipeline-table:end -->")[0]
    assert knobs == "\n" + render_config_table(PipelineSettings, prefix="<NAME>__")


def test_env_example_never_holds_a_secret_value() -> None:
    assert dotenv_values(stream=io.StringIO(render_env_example())) == {}  # a copy to .env sets nothing
    values = dotenv_values(stream=io.StringIO(_uncommented(render_env_example())))
    secrets = [field.variable for field in setting_fields() if field.secret]
    assert secrets == [
        "BUTTRESS_SECURITY__SECRET_KEY",
        "BUTTRESS_SECURITY__ADMIN_TOKEN",
        "BUTTRESS_SERVER__JWT_KEY",
        "BUTTRESS_CACHE__SIGNING_KEY",
        "BUTTRESS_DB__CURSOR_KEY",
    ]
    for variable in secrets:
        assert values[variable] == ""
    assert "<long random string>" not in render_env_example()


def test_env_example_documents_each_variable() -> None:
    text = render_env_example()
    assert (
        "# Where the service runs, reported in logs and health output.\n"
        "# One of: development, test, staging, production.\n"
        "# Default: development\n"
        "# BUTTRESS_APP__ENVIRONMENT=production\n"
    ) in text
    assert "# Default: unset\n# BUTTRESS_REDIS_URL=redis://127.0.0.1:6379/0\n" in text


class _Nested(BaseModel):
    mode: Literal["a", "b"] = Field(default="a", description="Pick a | b.", examples=["b"])


class _Custom(BaseSettings):
    nested: _Nested = Field(default_factory=_Nested)
    password: SecretStr | None = Field(default=None, description="Pw.", examples=["<pw>"])
    bare: int = 3


def test_rendering_works_for_any_tree_and_escapes_pipes() -> None:
    assert render_config_table(_Custom) == (
        "| Variable | Default | Description | Example |\n"
        "|---|---|---|---|\n"
        "| `BUTTRESS_NESTED__MODE` | `a` | Pick a \\| b. One of `a`, `b`. | `b` |\n"
        "| `BUTTRESS_PASSWORD` | *unset* | Pw. | `<pw>` |\n"
        "| `BUTTRESS_BARE` | `3` |  | `` |\n"
    )
    assert "BUTTRESS_PASSWORD=\n" in render_env_example(_Custom)


class _Window(BaseModel):
    low: int = Field(default=1, description="Low.", examples=[1])
    high: int = Field(default=2, description="High.", examples=[5])

    @model_validator(mode="after")
    def _ordered(self) -> _Window:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


class _WithList(BaseSettings):
    ports: list[int] = Field(default_factory=list, description="Ports.", examples=["[80, 443]"])
    window: _Window = Field(default_factory=_Window)


def test_errors_inside_a_leaf_and_on_a_whole_section_name_the_nearest_variable() -> None:
    with pytest.raises(PydanticValidationError) as caught:
        _WithList(ports=["http"], window={"low": 9, "high": 1}, _env_file=None)
    problems = problems_from_validation_error(caught.value, _WithList)
    assert problems == [
        ConfigProblem(
            "BUTTRESS_PORTS",
            "http",  # the offending item, not the whole list
            "Input should be a valid integer, unable to parse string as an integer",
            "[80, 443]",
        ),
        ConfigProblem(
            "BUTTRESS_WINDOW",
            '{"low": 9, "high": 1}',
            "Value error, low must not exceed high",
            '{"low": 1, "high": 5}',
        ),
    ]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+cluster://:s3cret@", "names no seed node"),
        ("redis+cluster://:s3cret@10.0.0.1:7000/3", "only database 0"),
        ("redis+sentinel://:s3cret@10.0.0.1:26379", "must name the Sentinel service"),
    ],
)
def test_a_cluster_or_sentinel_url_is_checked_with_the_settings(url: str, reason: str) -> None:
    (problem,) = _problems({"BUTTRESS_REDIS_URL": url}).problems
    assert problem.variable == "BUTTRESS_REDIS_URL"
    assert reason in problem.expected
    assert "s3cret" not in str(problem)


@pytest.mark.parametrize("url", [None, "sqlite:///jobs.db"])
def test_the_pgbouncer_pooler_on_sqlite_names_the_field_and_the_fix(url: str | None) -> None:
    environ = {"BUTTRESS_DB__POOLER": "pgbouncer"}
    if url is not None:
        environ["BUTTRESS_DATABASE_URL"] = url
    (problem,) = _problems(environ).problems
    assert problem.variable == "BUTTRESS_DB__POOLER"
    assert "PostgreSQL only" in problem.expected
    assert "BUTTRESS_DB__POOLER=none" in problem.expected


def test_a_listen_url_may_say_postgres_and_must_have_a_numeric_port() -> None:
    url = "postgres://app:hunter2@10.0.0.1:5432/app"
    database = {"BUTTRESS_DATABASE_URL": "postgresql://app@10.0.0.1:5432/app"}
    assert load_settings(environ={**database, "BUTTRESS_JOBS__LISTEN_URL": url}).jobs.listen_url == url
    bad = {**database, "BUTTRESS_JOBS__LISTEN_URL": "postgresql://app:hunter2@h:notaport/app"}
    (problem,) = _problems(bad).problems
    assert problem.variable == "BUTTRESS_JOBS__LISTEN_URL"
    assert "hunter2" not in str(problem)


def test_a_sentinel_password_in_the_query_is_masked_in_the_config_listing_and_its_problems() -> None:
    url = "redis+sentinel://:data-pw@10.0.0.1:26379/mymaster/0?sentinel_password=sentinel-pw"
    shown = {
        value.variable: value.value
        for value in describe_settings(
            load_settings(environ={"BUTTRESS_REDIS_URL": url}), environ={"BUTTRESS_REDIS_URL": url}
        )
    }
    assert (
        shown["BUTTRESS_REDIS_URL"]
        == f"redis+sentinel://:{MASK}@10.0.0.1:26379/mymaster/0?sentinel_password={MASK}"
    )
    (problem,) = _problems(
        {"BUTTRESS_REDIS_URL": "redis+sentinel://10.0.0.1?sentinel_password=sentinel-pw"}
    ).problems
    assert "sentinel-pw" not in str(problem)
    assert mask_url_password("redis://h:6379/0?password=pw&db=1") == f"redis://h:6379/0?password={MASK}&db=1"


def test_a_listen_url_without_a_postgresql_database_names_the_field_and_the_fix() -> None:
    (problem,) = _problems(
        {"BUTTRESS_JOBS__LISTEN_URL": "postgresql://app:hunter2@10.0.0.1:5432/app"}
    ).problems
    assert problem.variable == "BUTTRESS_JOBS__LISTEN_URL"
    assert "PostgreSQL only" in problem.expected
    assert "hunter2" not in str(problem)
    environ = {
        "BUTTRESS_DATABASE_URL": "postgresql+psycopg://app@pgbouncer:6432/app",
        "BUTTRESS_DB__POOLER": "pgbouncer",
        "BUTTRESS_JOBS__LISTEN_URL": "postgresql://app@10.0.0.1:5432/app",
    }
    assert load_settings(environ=environ).jobs.listen_url == environ["BUTTRESS_JOBS__LISTEN_URL"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BUTTRESS_SERVER__JWT_KEY", "my-real-but-short-key-2026"),  # too short: refused
        ("BUTTRESS_DATABASE_URL", "mysql://app:hunter2PW@db.internal/app"),  # scheme refused
    ],
)
def test_a_refused_secret_never_reaches_the_printed_traceback(variable: str, value: str) -> None:
    """pydantic's errors quote each input; chained under the ConfigError, an uncaught one printed it."""
    import traceback

    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, environ={variable: value})
    printed = "".join(traceback.format_exception(caught.value))
    assert variable in printed
    assert "hunter2PW" not in printed
    assert "my-real-but-short-key-2026" not in printed
    assert caught.value.__cause__ is None
