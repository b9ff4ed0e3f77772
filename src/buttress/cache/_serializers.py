"""How values become bytes in a shared store: JSON or msgpack by default, pickle only signed.

Unpickling runs code chosen by whoever wrote the bytes, so a cache that unpickles what it reads from Redis
hands that Redis to anyone who can write to it. JSON and msgpack cannot run code; they cover the values
services cache (dicts, lists, strings, numbers, booleans, None; msgpack adds bytes). Pickle is there for
values they cannot carry, and only with an HMAC key: each value is signed when written and a value whose
signature does not match is rejected with :class:`CacheIntegrityError` before ``pickle.loads`` sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import msgpack
from pydantic_core import from_json

from buttress.cache._roundtrip import check_value
from buttress.errors import ButtressError, ValidationError

__all__ = [
    "CacheIntegrityError",
    "JsonSerializer",
    "MsgpackSerializer",
    "Serializer",
    "SerializerName",
    "SignedPickleSerializer",
    "make_serializer",
]

SerializerName = Literal["json", "msgpack", "pickle"]

_SIGNATURE_BYTES = 32  # HMAC-SHA256
_MIN_KEY_BYTES = 16


class CacheIntegrityError(ButtressError):
    """A cached value failed its signature check (tampered, or signed with another key) and was refused."""

    default_code = "cache_integrity"
    default_status = 500
    title = "Cached value rejected"


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes for a shared store and back."""

    @property
    def name(self) -> str: ...

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """UTF-8 JSON. A value JSON would not return unchanged (a tuple, an int key, a set: see
    :mod:`buttress.cache._roundtrip`) is a ValidationError at ``set``."""

    name: ClassVar[str] = "json"
    _encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode
    _decode = json.JSONDecoder().decode

    def dumps(self, value: Any) -> bytes:
        check_value("json", value)
        try:
            return self._encode(value).encode()
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"value of type {type(value).__name__} cannot be cached as JSON ({exc}); cache a plain "
                "dict/list/str/number, or set BUTTRESS_CACHE__SERIALIZER=msgpack or pickle (with a signing "
                "key)",
                field="value",
            ) from exc

    def loads(self, data: bytes) -> Any:
        # pydantic-core's parser (a dependency of pydantic, already loaded) reads what json.dumps wrote in a
        # third of json's time: this runs on every Redis hit. It returns the same values (floats to the bit,
        # big ints, NaN and infinities); what it refuses (a lone surrogate escape, nesting past 200 levels,
        # bytes that are not JSON) goes to json, whose answer or error it was before. Only keys are cached
        # by the parser: a cached value string would outlive its entry in process memory.
        try:
            return from_json(data, cache_strings="keys")
        except ValueError:
            return self._decode(data.decode())

    def __repr__(self) -> str:
        return "JsonSerializer()"


class MsgpackSerializer:
    """msgpack: smaller and faster than JSON, and carries bytes and non-str keys.

    A value it would not return unchanged (a tuple, a set: see :mod:`buttress.cache._roundtrip`) is a
    ValidationError at ``set``.
    """

    name: ClassVar[str] = "msgpack"

    def dumps(self, value: Any) -> bytes:
        check_value("msgpack", value)
        try:
            data: bytes = msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValidationError(
                f"value of type {type(value).__name__} cannot be cached as msgpack ({exc}); cache plain "
                "dicts/lists/str/bytes/numbers, or set BUTTRESS_CACHE__SERIALIZER=pickle (with a signing "
                "key)",
                field="value",
            ) from exc
        return data

    def loads(self, data: bytes) -> Any:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)

    def __repr__(self) -> str:
        return "MsgpackSerializer()"


class SignedPickleSerializer:
    """pickle, each value prefixed with its HMAC-SHA256 under ``key``; altered bytes are refused."""

    name: ClassVar[str] = "pickle"

    def __init__(self, key: bytes | str) -> None:
        raw = key.encode() if isinstance(key, str) else key
        if not isinstance(raw, bytes) or len(raw) < _MIN_KEY_BYTES:
            raise ValidationError(
                f"the pickle serializer needs a signing key of at least {_MIN_KEY_BYTES} bytes; set "
                "BUTTRESS_CACHE__SIGNING_KEY to a long random secret (e.g. `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`)",
                field="signing_key",
            )
        self._key = raw

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def dumps(self, value: Any) -> bytes:
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
            check_value("pickle", value)  # raises the ValidationError that names the problem
            raise
        return self._sign(payload) + payload

    def loads(self, data: bytes) -> Any:
        signature, payload = data[:_SIGNATURE_BYTES], data[_SIGNATURE_BYTES:]
        if len(signature) < _SIGNATURE_BYTES or not hmac.compare_digest(signature, self._sign(payload)):
            raise CacheIntegrityError(
                "a cached pickle value failed its signature check (tampered with, or signed with another "
                "key) and was not unpickled",
                context={"bytes": len(data)},
            )
        return pickle.loads(payload)  # noqa: S301 - the HMAC above proves we wrote these bytes

    def __repr__(self) -> str:
        return "SignedPickleSerializer(key=***)"


def make_serializer(name: str, signing_key: bytes | str | None = None) -> Serializer:
    """The serializer called ``name``; ``pickle`` requires ``signing_key``."""
    if name == "json":
        return JsonSerializer()
    if name == "msgpack":
        return MsgpackSerializer()
    if name == "pickle":
        if signing_key is None:
            raise ValidationError(
                "serializer 'pickle' needs a signing key so tampered values are rejected; set "
                "BUTTRESS_CACHE__SIGNING_KEY, or use serializer 'json' or 'msgpack'",
                field="signing_key",
            )
        return SignedPickleSerializer(signing_key)
    raise ValidationError(
        f"serializer must be one of json, msgpack, pickle, got {name!r}", field="serializer"
    )
