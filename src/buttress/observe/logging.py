"""Structured logs for buttress and every library in the process, with secrets redacted.

:func:`configure_logging` sets up structlog and gives stdlib ``logging`` records the same processors
(structlog's ``ProcessorFormatter`` on one root handler), so a line from httpx or SQLAlchemy looks like a
line from buttress: same timestamp, level, bound context (request id, job id) and redaction.

Redaction (:func:`redact_secrets`) runs on every event, after tracebacks are rendered to text, and walks
nested dicts, lists and tuples:

* ``SecretStr`` / ``SecretBytes`` values are masked wherever they are.
* A value under a sensitive key is masked whole (``None`` stays ``None``). Keys are split into words
  (``_ - .``, spaces, camelCase): a key is sensitive when a word is one of :data:`SENSITIVE_WORDS`,
  ends with one of :data:`SENSITIVE_ENDINGS` (``accessToken``, ``clientsecret``, ``x-apikey``), or
  ``key`` follows one of :data:`KEY_QUALIFIERS` (``api_key``, ``X-API-Key``, ``private_key``). A key
  whose *last* word says it describes a secret rather than holds one is left alone (``token_count``,
  ``token_type``, ``password_length``, ``secret_name``, ``access_key_id``): see
  :data:`DESCRIPTIVE_LAST_WORDS`. ``session_id`` is not masked: correlating by it is its point.
* ``(name, value)`` pairs -- headers as httpx lists them -- are masked like ``{name: value}``.
* Every secret value of the loaded settings (admin token, JWT key, secret key, signing key, URL
  passwords: :mod:`buttress.observe.secrets`) is masked wherever it appears in any string, free text
  and rendered tracebacks included.
* Passwords inside URLs in any string are masked: ``redis://u:pw@h`` -> ``redis://u:**********@h``.
* Credentials written as ``name=value`` in any string are masked: in a query string (after ``?``, ``&``
  or ``;``) the names of :data:`~buttress._redaction.CREDENTIAL_PARAMS` (``token``, ``access_token``,
  ``api_key``, ``key``, ``password``, ``secret``, ``signature``, ``sig``, ``auth``, ``code``...,
  any case) and every sensitive key; in other free text the sensitive keys (``password=``, ``token=``).
  So uvicorn's access log and httpx's request log show ``?api_key=**********``.
* Other objects are rendered with ``repr`` (as the renderers would), then scrubbed as above.
* Control characters in values (CR, LF, ESC, ...) are written as escapes (``\\r\\n``), so a value --
  a path parameter, a header -- cannot forge a log line; a rendered traceback keeps its line breaks.
* uvicorn's ``color_message`` extra (the line again, with ANSI colours) is dropped.

A secret the process does not know (a third party's key in free text without ``name=``) still leaks:
pass it as ``api_key=key`` so its key masks it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from pydantic import SecretBytes, SecretStr
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

from buttress._redaction import (
    DESCRIPTIVE_LAST_WORDS,
    KEY_QUALIFIERS,
    MASK,
    SENSITIVE_ENDINGS,
    SENSITIVE_WORDS,
    escape_control_characters,
    is_sensitive_key,
    scrub_text,
)
from buttress.errors import ValidationError
from buttress.observe.secrets import get_secret_scrubber, register_secrets, scrubber_without_waiting

if TYPE_CHECKING:
    from buttress.config import Settings

__all__ = [
    "DESCRIPTIVE_LAST_WORDS",
    "KEY_QUALIFIERS",
    "SENSITIVE_ENDINGS",
    "SENSITIVE_WORDS",
    "bind_context",
    "configure_logging",
    "configure_logging_from_settings",
    "drop_foreign_noise",
    "get_logger",
    "is_sensitive_key",
    "redact_secrets",
]

_PROCESSOR_META_KEYS = frozenset({"_record", "_from_structlog"})
_MULTILINE_KEYS = frozenset({"exception", "stack"})  # rendered tracebacks: several lines by design


def _redact(value: Any, secrets: tuple[str, ...]) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _clean(value, secrets)
    if isinstance(value, dict):
        return {key: _redact_item(key, item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return _redact_sequence(value, secrets)
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    return _clean(repr(value), secrets)


def _clean(text: str, secrets: tuple[str, ...], *, keep_newlines: bool = False) -> str:
    return escape_control_characters(scrub_text(text, secrets), keep_newlines=keep_newlines)


def _redact_sequence(
    values: list[Any] | tuple[Any, ...], secrets: tuple[str, ...]
) -> list[Any] | tuple[Any, ...]:
    if isinstance(values, list):
        return [_redact(item, secrets) for item in values]
    if len(values) == 2 and isinstance(values[0], str) and is_sensitive_key(values[0]):
        return (values[0], _masked(values[1]))  # a (header, value) pair
    return tuple(_redact(item, secrets) for item in values)


def _masked(value: Any) -> Any:
    return None if value is None else MASK


def _redact_item(key: object, value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(key, str) and is_sensitive_key(key):
        return _masked(value)
    return _redact(value, secrets)


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets and escape control characters anywhere in the event.

    The rules are in the module docstring. This is the one choke point of every log line, structlog's
    and stdlib's alike.
    """
    secrets = scrubber_without_waiting().values
    for key, value in event_dict.items():
        if key in _PROCESSOR_META_KEYS:
            continue
        if key in _MULTILINE_KEYS and isinstance(value, str):
            event_dict[key] = _clean(value, secrets, keep_newlines=True)
        else:
            event_dict[key] = _redact_item(key, value, secrets)
    return event_dict


def drop_foreign_noise(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor for stdlib records: drop the extras that repeat the line.

    uvicorn puts ``color_message`` (the message with ANSI colours) in its records' extra, and a record
    another handler formatted first carries ``message`` (the event again).
    """
    event_dict.pop("color_message", None)
    if "message" in event_dict and event_dict["message"] == event_dict.get("event"):
        del event_dict["message"]
    return event_dict


class _ButtressHandler(logging.StreamHandler[TextIO]):
    """The root handler :func:`configure_logging` owns; its type lets a second call find and replace it."""


def _level_number(level: str | int) -> int:
    if isinstance(level, int) and level >= 0:
        return level
    number = logging.getLevelNamesMapping().get(level.strip().upper()) if isinstance(level, str) else None
    if number is None:
        raise ValidationError(
            f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL (any case) "
            "or a number >= 0",
            field="level",
        )
    return number


def _wants_colour(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ


def _common_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(json: bool = False, level: str | int = "INFO", *, stream: TextIO | None = None) -> None:
    """Send structlog and stdlib logs through one handler on the root logger, as JSON lines or console text.

    Calling it again replaces the handler it added before (other handlers, such as pytest's, are left
    alone). ``stream`` defaults to ``sys.stderr`` at call time. Raises :class:`ValidationError` for an
    unknown ``level``.
    """
    number = _level_number(level)
    get_secret_scrubber()  # built now (from the settings), not under the first line's caller
    output = sys.stderr if stream is None else stream
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=_wants_colour(output))
    )
    # Tracebacks become text before redaction, so a password inside an exception message is masked too.
    formatter = ProcessorFormatter(
        foreign_pre_chain=[
            *_common_processors(),
            structlog.stdlib.ExtraAdder(),
            drop_foreign_noise,
            structlog.processors.format_exc_info,
            redact_secrets,
        ],
        processors=[ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _ButtressHandler(output)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for previous in [existing for existing in root.handlers if isinstance(existing, _ButtressHandler)]:
        root.removeHandler(previous)
        previous.close()
    root.addHandler(handler)
    root.setLevel(number)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # skip the processors for lines below the level
            *_common_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_secrets,  # before the record exists, so other handlers (caplog) see it redacted too
            ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: loggers made at import time keep following a later configure_logging() call.
        cache_logger_on_first_use=False,
    )


def configure_logging_from_settings(settings: Settings, *, stream: TextIO | None = None) -> None:
    """:func:`configure_logging` with ``settings.logging`` (``BUTTRESS_LOGGING__LEVEL`` and ``__FORMAT``).

    The secret values of ``settings`` are scrubbed from every line from then on.
    """
    register_secrets(settings)
    configure_logging(json=settings.logging.format == "json", level=settings.logging.level, stream=stream)


def get_logger(name: str | None = None, **initial_values: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger backed by the stdlib logger ``name``, so stdlib levels and handlers apply."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **initial_values)
    return logger


@contextmanager
def bind_context(**values: Any) -> Iterator[None]:
    """Add ``values`` (request id, job id, ...) to every log line inside, structlog and stdlib alike.

    Uses context variables, so concurrent threads and asyncio tasks each see their own; on exit the
    previous values are restored, even on an exception.
    """
    with structlog.contextvars.bound_contextvars(**values):
        yield
