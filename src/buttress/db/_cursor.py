"""Page cursors: the boundary row's sort values, signed, in one opaque URL-safe string.

A cursor is ``base64url(HMAC-SHA256(key, payload) + payload)``, the payload a compact JSON array of the
format version, the direction (``a``: rows after the boundary, ``b``: rows before it), whether the
boundary row itself is included, a fingerprint of the query and its ordering, and the boundary's sort
values, each tagged with its type so it comes back exactly as it left: ``int``, ``str``, ``bool``,
``float``, ``Decimal``, ``datetime`` (naive or with its UTC offset), ``date``, ``time``, ``timedelta``,
``UUID``, ``bytes`` and ``None``. The signature is checked (constant time) before anything in the
payload is trusted, so a client can neither forge a position nor make the server parse a crafted value.

The key is ``key=`` when given, else ``db.cursor_key``, else ``security.secret_key``. With none of them
set, development and test sign with a random per-process key (cursors then die with the process and
do not cross workers), while staging and production refuse with a :class:`ConfigError`, as a service
that forgot its secret should. Every key is first bound to this use by an HMAC with a fixed label, so a
cursor signature never doubles as another signature made with ``security.secret_key``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from pydantic import SecretStr

from buttress.config import Settings, env_var_name, get_settings
from buttress.errors import ConfigError, ValidationError

__all__ = [
    "MAX_CURSOR_CHARS",
    "Cursor",
    "Direction",
    "KeyLike",
    "cursor_key",
    "decode_cursor",
    "encode_cursor",
    "fingerprint",
]

Direction = Literal["a", "b"]
KeyLike = str | bytes | SecretStr

MAX_CURSOR_CHARS: Final = 4096
"""Longer strings are refused before decoding, so a cursor costs bounded work."""
_VERSION: Final = 1
_MAC_BYTES: Final = 32
_MIN_KEY_BYTES: Final = 16
_LABEL: Final = b"buttress.db.cursor.v1"
_UNSAFE_ENVIRONMENTS: Final = frozenset({"staging", "production"})
_PROCESS_KEY: Final = secrets.token_bytes(32)
"""The development-only key: random, never written anywhere, gone with the process."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A decoded cursor: where the page starts (``values``), which way it goes, and for what query."""

    direction: Direction
    values: tuple[Any, ...]
    fingerprint: str
    inclusive: bool = False


def cursor_key(key: KeyLike | None = None, settings: Settings | None = None) -> bytes:
    """The signing key: ``key``, else the settings' ``db.cursor_key`` or ``security.secret_key``.

    Without any, development and test get the per-process key; staging and production a ConfigError.
    """
    raw: bytes
    if key is not None:
        secret = key.get_secret_value() if isinstance(key, SecretStr) else key
        raw = secret.encode() if isinstance(secret, str) else secret
        if not isinstance(raw, bytes) or len(raw) < _MIN_KEY_BYTES:
            raise ValidationError(
                f"key must be at least {_MIN_KEY_BYTES} bytes (str, bytes or SecretStr); "
                "use a long random secret, e.g. secrets.token_urlsafe(32)",
                field="key",
            )
    else:
        settings = settings or get_settings()
        configured = settings.db.cursor_key or settings.security.secret_key
        if configured is not None:
            raw = configured.get_secret_value().encode()
        elif settings.app.environment in _UNSAFE_ENVIRONMENTS:
            raise ConfigError(
                f"page cursors need a signing key in {settings.app.environment}: set "
                f"{env_var_name(('db', 'cursor_key'))} or {env_var_name(('security', 'secret_key'))} "
                "to a long random secret (every process of the service must share it)"
            )
        else:
            return _PROCESS_KEY
    return hmac.new(raw, _LABEL, hashlib.sha256).digest()


def fingerprint(*parts: str) -> str:
    """A short stable digest of what a cursor belongs to (query text and ordering)."""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def encode_cursor(cursor: Cursor, key: bytes) -> str:
    """The signed, URL-safe string of ``cursor``; a value of another type is a ValidationError."""
    payload = json.dumps(
        [
            _VERSION,
            cursor.direction,
            int(cursor.inclusive),
            cursor.fingerprint,
            [_encode_value(value) for value in cursor.values],
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac + payload).rstrip(b"=").decode("ascii")


def decode_cursor(text: object, *, field: str, key: bytes, fingerprint: str, size: int) -> Cursor:
    """The cursor ``text`` carries, checked: signed with ``key``, made for ``fingerprint``, ``size`` values.

    Anything else (not a string, malformed, tampered with, signed with another key, made for another query
    or ordering) is a ValidationError naming ``field``, without echoing what the client sent.
    """
    data = _unsigned(text, field=field, key=key)
    try:
        version, direction, inclusive, made_for, values = json.loads(data)
    except (ValueError, TypeError) as exc:
        raise _invalid(field, "its signed payload is not a cursor") from exc
    if version != _VERSION or direction not in ("a", "b") or inclusive not in (0, 1):
        raise _invalid(field, "it was made by another version of buttress")
    if made_for != fingerprint:
        raise _invalid(
            field,
            "it was made for another query or ordering; a cursor only works with the query and "
            "order_by that produced it",
            code="cursor_mismatch",
        )
    if not isinstance(values, list) or len(values) != size:
        raise _invalid(field, "it carries a different number of sort values than order_by has")
    try:
        decoded = tuple(_decode_value(value) for value in values)
    except (ValueError, TypeError, KeyError, InvalidOperation, binascii.Error) as exc:
        raise _invalid(field, "one of its sort values cannot be read") from exc
    return Cursor(direction, decoded, made_for, bool(inclusive))


def _unsigned(text: object, *, field: str, key: bytes) -> bytes:
    """The payload of ``text`` once its signature is verified."""
    if not isinstance(text, str) or not text:
        raise _invalid(field, "it is not a non-empty string")
    if len(text) > MAX_CURSOR_CHARS:
        raise _invalid(field, f"it is longer than {MAX_CURSOR_CHARS} characters")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(field, "it is not URL-safe base64") from exc
    if len(raw) <= _MAC_BYTES:
        raise _invalid(field, "it is too short to hold a signature and a position")
    mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise _invalid(
            field,
            "its signature does not match (it was altered, or signed with another key)",
            code="cursor_tampered",
        )
    return payload


def _invalid(field: str, why: str, *, code: str = "cursor_invalid") -> ValidationError:
    return ValidationError(
        f"{field} is not a valid page cursor: {why}; pass the next or previous cursor of a page "
        "exactly as it was returned, or omit it to start from the first page",
        field=field,
        error_code=code,
    )


# -- values -------------------------------------------------------------------------------------------
# A value is JSON null, true/false, a JSON integer, or a string whose first character names its type.


def _encode_value(value: Any) -> Any:  # noqa: PLR0911 - one branch per supported type
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, float):
        return "f" + repr(value)
    if isinstance(value, Decimal):
        return "n" + str(value)
    if isinstance(value, dt.datetime):
        return "t" + value.isoformat()
    if isinstance(value, dt.date):
        return "d" + value.isoformat()
    if isinstance(value, dt.time):
        return "h" + value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"r{value.days},{value.seconds},{value.microseconds}"
    if isinstance(value, uuid.UUID):
        return "u" + value.hex
    if isinstance(value, bytes):
        return "b" + base64.b64encode(value).decode("ascii")
    raise ValidationError(
        f"order_by has a column whose values are {type(value).__name__}, which a page cursor cannot "
        "carry; order by columns of type int, str, bool, float, Decimal, datetime, date, time, "
        "timedelta, UUID or bytes",
        field="order_by",
    )


def _decode_value(value: Any) -> Any:  # noqa: PLR0911 - one branch per supported type
    if value is None or isinstance(value, bool | int):
        return value
    if not isinstance(value, str) or not value:
        raise TypeError("not a tagged value")
    tag, body = value[0], value[1:]
    if tag == "s":
        return body
    if tag == "f":
        return float(body)
    if tag == "n":
        return Decimal(body)
    if tag == "t":
        return dt.datetime.fromisoformat(body)
    if tag == "d":
        return dt.date.fromisoformat(body)
    if tag == "h":
        return dt.time.fromisoformat(body)
    if tag == "r":
        days, seconds, micros = (int(part) for part in body.split(","))
        return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if tag == "u":
        return uuid.UUID(hex=body)
    if tag == "b":
        return base64.b64decode(body, validate=True)
    raise KeyError(tag)
