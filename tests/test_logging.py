"""Logging: one format for structlog and stdlib, levels, idempotence, bound context, redaction of secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretBytes, SecretStr

from buttress.config import load_settings
from buttress.errors import MASK, ValidationError
from buttress.observe.logging import (
    bind_context,
    configure_logging,
    configure_logging_from_settings,
    get_logger,
    is_sensitive_key,
    redact_secrets,
)


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts and ends with the root logger and structlog as they were."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.contextvars.clear_contextvars()
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _configured(*, json: bool, level: str | int = "DEBUG") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(json=json, level=level, stream=stream)
    return stream


# --- format: structlog and stdlib alike ---------------------------------------------------------------------


def test_json_lines_from_structlog() -> None:
    stream = _configured(json=True)
    get_logger("orders").info("order placed %s", "A-1", amount=12)
    (line,) = _json_lines(stream)
    assert line["event"] == "order placed A-1"
    assert line["amount"] == 12
    assert line["level"] == "info"
    assert line["logger"] == "orders"
    assert line["timestamp"].endswith("Z")


def test_json_lines_from_stdlib_loggers() -> None:
    stream = _configured(json=True)
    logging.getLogger("somelib").warning("retrying %s in %ss", "GET /", 2, extra={"attempt": 3})
    (line,) = _json_lines(stream)
    assert line["event"] == "retrying GET / in 2s"
    assert line["attempt"] == 3
    assert line["level"] == "warning"
    assert line["logger"] == "somelib"
    assert line["timestamp"].endswith("Z")


def test_console_lines_for_structlog_and_stdlib_without_colour_off_a_tty() -> None:
    stream = _configured(json=False)
    get_logger("orders").info("order placed", amount=12)
    logging.getLogger("somelib").error("lost %s", "connection")
    first, second = stream.getvalue().splitlines()
    assert "[info     ] order placed" in first
    assert "[orders]" in first
    assert "amount=12" in first
    assert "[error    ] lost connection" in second
    assert "[somelib]" in second
    assert "\x1b[" not in stream.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_on_a_tty_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    configure_logging(stream=terminal)
    get_logger("x").info("coloured")
    assert "\x1b[" in terminal.getvalue()

    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Terminal()
    configure_logging(stream=plain)
    get_logger("x").info("plain")
    assert "\x1b[" not in plain.getvalue()


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    get_logger("x").warning("to stderr")
    captured = capsys.readouterr()
    assert json.loads(captured.err)["event"] == "to stderr"
    assert captured.out == ""


def _connect() -> None:
    raise RuntimeError("cannot reach postgresql://app:hunter2@db/app")


def test_exceptions_are_rendered_in_both_formats() -> None:
    for as_json in (True, False):
        stream = _configured(json=as_json)
        try:
            _connect()
        except RuntimeError:
            get_logger("x").exception("structlog failure")
            logging.getLogger("lib").exception("stdlib failure")
        text = stream.getvalue()
        assert text.count("Traceback (most recent call last)") == 2
        assert text.count(f"RuntimeError: cannot reach postgresql://app:{MASK}@db/app") == 2
        assert "hunter2" not in text


def test_get_logger_binds_initial_values() -> None:
    stream = _configured(json=True)
    get_logger("x", component="cache").info("hit")
    assert _json_lines(stream)[0]["component"] == "cache"


# --- levels and idempotence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["warning", "WARNING", " Warning ", logging.WARNING])
def test_level_filters_structlog_and_stdlib(level: str | int) -> None:
    stream = _configured(json=True, level=level)
    get_logger("x").info("dropped")
    logging.getLogger("lib").info("dropped too")
    get_logger("x").warning("kept")
    logging.getLogger("lib").error("kept too")
    assert [line["event"] for line in _json_lines(stream)] == ["kept", "kept too"]


@pytest.mark.parametrize("level", ["LOUD", -1, ""])
def test_unknown_level_is_refused(level: str | int) -> None:
    with pytest.raises(ValidationError) as caught:
        configure_logging(level=level)
    assert caught.value.field == "level"
    assert str(caught.value) == (
        f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL (any case) "
        "or a number >= 0"
    )


def test_configuring_twice_keeps_one_handler_and_follows_the_new_stream() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    first = _configured(json=True)
    second = _configured(json=True)
    assert len(root.handlers) == before + 1
    get_logger("x").info("once")
    logging.getLogger("lib").info("once too")
    assert first.getvalue() == ""
    assert [line["event"] for line in _json_lines(second)] == ["once", "once too"]


def test_logger_made_before_configuring_follows_the_configuration() -> None:
    early = get_logger("early")
    stream = _configured(json=True)
    early.info("late")
    assert _json_lines(stream)[0]["event"] == "late"


def test_other_handlers_are_left_alone_and_see_redacted_events(caplog: pytest.LogCaptureFixture) -> None:
    _configured(json=True)
    caplog.set_level(logging.INFO)
    get_logger("x").info("login", password="hunter2")
    assert any(handler is caplog.handler for handler in logging.getLogger().handlers)
    assert "hunter2" not in caplog.text
    assert caplog.records[0].msg["password"] == MASK  # type: ignore[index]


def test_configure_from_settings() -> None:
    settings = load_settings(
        env_file=None, environ={"BUTTRESS_LOGGING__FORMAT": "json", "BUTTRESS_LOGGING__LEVEL": "error"}
    )
    stream = io.StringIO()
    configure_logging_from_settings(settings, stream=stream)
    get_logger("x").warning("dropped")
    get_logger("x").error("kept")
    assert [line["event"] for line in _json_lines(stream)] == ["kept"]


# --- bound context ------------------------------------------------------------------------------------------


def test_bound_context_reaches_structlog_and_stdlib_and_leaves_on_exit() -> None:
    stream = _configured(json=True)
    with bind_context(request_id="r-1", job_id="j-9"):
        get_logger("x").info("inside")
        logging.getLogger("lib").info("inside too")
    get_logger("x").info("outside")
    logging.getLogger("lib").info("outside too")
    inside, inside_too, outside, outside_too = _json_lines(stream)
    for line in (inside, inside_too):
        assert (line["request_id"], line["job_id"]) == ("r-1", "j-9")
    for line in (outside, outside_too):
        assert "request_id" not in line
        assert "job_id" not in line


def test_nested_context_restores_the_outer_values_even_after_an_exception() -> None:
    stream = _configured(json=True)

    def fail_inside_inner_context() -> None:
        with bind_context(request_id="inner", step=2):
            get_logger("x").info("nested")
            raise KeyError("boom")

    with bind_context(request_id="outer"):
        with pytest.raises(KeyError):
            fail_inside_inner_context()
        get_logger("x").info("back")
    nested, back = _json_lines(stream)
    assert (nested["request_id"], nested["step"]) == ("inner", 2)
    assert back["request_id"] == "outer"
    assert "step" not in back


def test_context_is_per_thread() -> None:
    stream = _configured(json=True)
    ready, done = threading.Event(), threading.Event()

    def other() -> None:
        ready.wait(5)
        get_logger("x").info("other thread")
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with bind_context(request_id="main"):
        ready.set()
        assert done.wait(5)
    thread.join(5)
    (line,) = _json_lines(stream)
    assert line["event"] == "other thread"
    assert "request_id" not in line


async def test_context_is_per_task() -> None:
    stream = _configured(json=True)

    async def handle(request_id: str) -> None:
        with bind_context(request_id=request_id):
            await asyncio.sleep(0)
            get_logger("x").info("handled")

    await asyncio.gather(handle("a"), handle("b"))
    assert sorted(line["request_id"] for line in _json_lines(stream)) == ["a", "b"]


# --- redaction ----------------------------------------------------------------------------------------------


def test_redaction_in_json_output() -> None:
    stream = _configured(json=True)
    get_logger("x").info(
        "connecting to redis://app:pw1@cache:6379/0",
        password="pw2",
        api_key="pw3",
        token_count=3,
        secret=SecretStr("pw4"),
        config={"db": {"url": "postgresql://u:pw5@db/x", "Client-Secret": "pw6"}, "ttl": 5},
        headers=[("Authorization", "Bearer pw7"), ("Accept", "application/json")],
        items=[SecretBytes(b"pw8"), {"refreshToken": "pw9"}, None],
        session_token=None,
    )
    line = _json_lines(stream)[0]
    assert "pw" not in json.dumps({k: v for k, v in line.items() if k != "timestamp"}).replace("password", "")
    assert line["event"] == f"connecting to redis://app:{MASK}@cache:6379/0"
    assert line["password"] == MASK
    assert line["api_key"] == MASK
    assert line["token_count"] == 3
    assert line["secret"] == MASK
    assert line["config"] == {"db": {"url": f"postgresql://u:{MASK}@db/x", "Client-Secret": MASK}, "ttl": 5}
    assert line["headers"] == [["Authorization", MASK], ["Accept", "application/json"]]
    assert line["items"] == [MASK, {"refreshToken": MASK}, None]
    assert line["session_token"] is None


def test_redaction_in_console_output_and_stdlib_extra() -> None:
    stream = _configured(json=False)
    get_logger("x").info("login", password="hunter2", user="ann")
    logging.getLogger("lib").info("to %s", "redis://:hunter3@h", extra={"cookie": "hunter4"})
    text = stream.getvalue()
    assert f"password={MASK}" in text
    assert "user=ann" in text
    assert f"to redis://:{MASK}@h" in text
    assert f"cookie={MASK}" in text
    assert "hunter" not in text


def test_bound_context_is_redacted_too() -> None:
    stream = _configured(json=True)
    with bind_context(request_id="r", auth_token="hunter2"):
        logging.getLogger("lib").info("stdlib")
        get_logger("x").info("structlog")
    for line in _json_lines(stream):
        assert line["auth_token"] == MASK
        assert line["request_id"] == "r"


class _Opaque:
    def __repr__(self) -> str:
        return "<Opaque dsn=redis://u:hunter2@h>"


def test_other_objects_are_shown_by_repr_with_url_passwords_masked() -> None:
    event = redact_secrets(None, "info", {"event": "e", "obj": _Opaque(), "pair": ("a", 1), 7: "seven"})
    assert event == {"event": "e", "obj": f"<Opaque dsn=redis://u:{MASK}@h>", "pair": ("a", 1), 7: "seven"}


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "client_secret",
        "clientSecret",
        "token",
        "access_token",
        "accessToken",
        "refresh-token",
        "X-Auth-Token",
        "api_key",
        "apikey",
        "apiKey",
        "APIKey",
        "X-API-Key",
        "x-apikey",
        "authorization",
        "Proxy-Authorization",
        "auth",
        "cookie",
        "Set-Cookie",
        "private_key",
        "access_key",
        "secret_key",
        "signing.key",
        "credentials",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "token_count",
        "tokenType",
        "token_type",
        "password_length",
        "secret_name",
        "access_key_id",
        "auth_method",
        "password_expires_at",
        "token_url",
        "tokenizer",
        "secretary",
        "author",
        "keyboard",
        "cache_key",
        "session_id",
        "user",
        "",
        "__",
    ],
)
def test_keys_that_are_not_secrets(key: str) -> None:
    assert not is_sensitive_key(key)


# --- free text: credentials in key=value and query strings, control characters, foreign fields -------------


def test_credentials_in_free_text_and_query_strings_are_masked() -> None:
    stream = _configured(json=False)
    logging.getLogger("lib").info(
        "GET /v1/items?page=2&access_token=tok1&KEY=tok2&sig=tok3&code=tok4 then password=tok5 api_key='tok6'"
    )
    get_logger("x").info("retry https://h/cb?client_secret=tok7#frag", cache_key="user:1 key=k1")
    text = stream.getvalue()
    assert not any(f"tok{n}" in text for n in range(1, 8))
    assert f"?page=2&access_token={MASK}&KEY={MASK}&sig={MASK}&code={MASK}" in text
    assert f"password={MASK} api_key={MASK}" in text
    assert f"client_secret={MASK}#frag" in text
    assert "key=k1" in text  # a bare key= in free text is not a credential; in a query string it is


@pytest.mark.parametrize("json_format", [False, True])
def test_control_characters_in_values_cannot_forge_a_line(json_format: bool) -> None:
    stream = _configured(json=json_format)
    forged = "x\r\n2026-01-01T00:00:00Z [critical ] admin logged in\x1b[31m"
    logging.getLogger("lib").warning("logger %s changed", forged, extra={"who": forged})
    get_logger("x").warning(forged, name=forged, nested={"a": [forged]})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert not any(line.startswith("2026-01-01") for line in lines)
    assert "\x1b" not in stream.getvalue()
    assert "\\r\\n2026-01-01" in lines[0] or "\\\\r\\\\n2026-01-01" in lines[0]
    assert "\\x1b[31m" in lines[1] or "\\\\x1b[31m" in lines[1]


def test_tracebacks_keep_their_lines_but_not_other_control_characters() -> None:
    stream = _configured(json=False)
    try:
        _connect_with("bad\rhost\x07")
    except ConnectionError:
        get_logger("x").exception("failed")
    text = stream.getvalue()
    assert "Traceback (most recent call last):" in text
    assert "\r" not in text
    assert "\x07" not in text
    assert "bad\\rhost\\x07" in text


def _connect_with(host: str) -> None:
    raise ConnectionError(f"cannot reach {host}")


def test_uvicorns_color_message_is_dropped() -> None:
    """uvicorn adds ``color_message`` (the same text with ANSI colours) to its records' extra.

    A logger of the test's own: an earlier test that ran uvicorn with its default log config has made
    ``uvicorn.*`` stop propagating to the root (tests/server/test_secret_scrubbing.py runs a real one).
    """
    uvicorn_like = logging.getLogger("tests.logging.uvicorn_like")
    stream = _configured(json=True)
    uvicorn_like.info(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    console = _configured(json=False)
    uvicorn_like.info("Finished", extra={"color_message": "\x1b[1mFinished\x1b[0m"})
    [line] = _json_lines(stream)
    assert line["event"] == "Started server process [42]"
    assert "color_message" not in line
    assert "color_message" not in console.getvalue()


# --- a line logged while another thread builds a singleton -------------------------------------------------


@pytest.mark.usefixtures("isolated_settings")
def test_a_line_never_waits_on_a_thread_that_builds_a_singleton_and_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a container reset the first line used to build the scrubber through the container under the
    handler's lock, while a thread building a singleton held the container's lock and logged: both waited
    forever (seen about one run in ten with the tiered cache's threads logging that Redis was away)."""
    from buttress.config import reset_settings
    from buttress.container import get_container, reset_container

    secret = "s3cr3t-key-for-the-deadlock-test"
    monkeypatch.setenv("BUTTRESS_SECURITY__SECRET_KEY", secret)
    reset_settings()
    stream = _configured(json=True)
    reset_container()  # the new container has no scrubber yet
    inside, release = threading.Event(), threading.Event()

    class Slow:
        def __init__(self) -> None:
            inside.set()
            assert release.wait(10)
            logging.getLogger("builder").warning("built while holding the container's lock")

    get_container().register(Slow, Slow)
    builder = threading.Thread(target=get_container().resolve, args=(Slow,), daemon=True)
    builder.start()
    assert inside.wait(10)
    writer = threading.Thread(
        target=lambda: logging.getLogger("writer").warning("the key is %s", secret), daemon=True
    )
    writer.start()
    writer.join(10)
    try:
        assert not writer.is_alive(), "the line waited on the container's lock"
    finally:
        release.set()
    builder.join(10)
    assert not builder.is_alive()
    lines = _json_lines(stream)
    assert [line["event"] for line in lines] == [
        f"the key is {MASK}",
        "built while holding the container's lock",
    ]
    assert secret not in stream.getvalue()
    reset_container()
