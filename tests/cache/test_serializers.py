"""Serializer safety: JSON and msgpack round-trip; pickle only signed, and tampering is refused."""

from __future__ import annotations

import json
import math
import pickle
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.cache import (
    CacheIntegrityError,
    JsonSerializer,
    MsgpackSerializer,
    SignedPickleSerializer,
    make_serializer,
)
from buttress.errors import ValidationError

VALUE = {"name": "Zoë", "plays": 12, "score": 0.5, "tags": ["a", "b"], "ok": True, "none": None}


@pytest.mark.parametrize("serializer", [JsonSerializer(), MsgpackSerializer()], ids=["json", "msgpack"])
def test_round_trip(serializer: JsonSerializer | MsgpackSerializer) -> None:
    assert serializer.loads(serializer.dumps(VALUE)) == VALUE
    assert serializer.loads(serializer.dumps([1, "x"])) == [1, "x"]


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down, NaN equal to NaN and -0.0 told from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[key], b[key]) for key in a)
    return bool(a == b)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**80), max_value=10**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES)
def test_json_reads_what_it_wrote_as_json_does(value: Any) -> None:
    serializer = JsonSerializer()
    data = serializer.dumps(value)
    assert _same(serializer.loads(data), json.loads(data))
    assert _same(serializer.loads(data), value)


@pytest.mark.parametrize(
    "data",
    [
        b'"\\ud800"',  # a lone surrogate escape: json reads it
        b"[" * 300 + b"]" * 300,  # deeper than pydantic-core goes: json reads it
        b'{"b":1,"a":2,"b":3}',
        b"1E400",
        b"-0",
        b"NaN",
        b"-Infinity",
        b"9" * 5000,  # past Python's int digits limit: refused
        b"[1,]",
        b"01",
        b"1 x",
        b"\xef\xbb\xbf1",
        b'"\xff"',
    ],
)
def test_json_reads_foreign_bytes_as_json_does(data: bytes) -> None:
    """Bytes another writer left (odd, deep or broken JSON) give json's value, or an error as json did."""
    try:
        expected: Any = json.JSONDecoder().decode(data.decode())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the int digits limit
        with pytest.raises(type(exc), match=re.escape(str(exc))):
            JsonSerializer().loads(data)
    else:
        assert _same(JsonSerializer().loads(data), expected)


def test_msgpack_keeps_bytes_and_json_refuses_them_clearly() -> None:
    assert MsgpackSerializer().loads(MsgpackSerializer().dumps(b"\x00\xff")) == b"\x00\xff"
    with pytest.raises(ValidationError, match="bytes cannot be stored with the json serializer") as caught:
        JsonSerializer().dumps(b"x")
    assert caught.value.context["field"] == "value"
    with pytest.raises(ValidationError, match="msgpack"):
        MsgpackSerializer().dumps(object())


def test_signed_pickle_round_trips_rich_values() -> None:
    serializer = SignedPickleSerializer("k" * 32)
    value = {"set": {1, 2}, "tuple": (1, 2)}
    assert serializer.loads(serializer.dumps(value)) == value


def test_tampered_pickle_is_rejected_before_unpickling() -> None:
    serializer = SignedPickleSerializer("k" * 32)
    data = bytearray(serializer.dumps({"admin": False}))
    data[-3] ^= 0x01
    with pytest.raises(CacheIntegrityError) as caught:
        serializer.loads(bytes(data))
    assert caught.value.error_code == "cache_integrity"


def test_unsigned_or_foreign_pickle_is_rejected() -> None:
    serializer = SignedPickleSerializer("k" * 32)
    with pytest.raises(CacheIntegrityError):
        serializer.loads(pickle.dumps({"x": 1}))
    other = SignedPickleSerializer("o" * 32)
    with pytest.raises(CacheIntegrityError):
        serializer.loads(other.dumps(1))
    with pytest.raises(CacheIntegrityError):
        serializer.loads(b"short")


def test_pickle_needs_a_long_key_and_never_shows_it() -> None:
    with pytest.raises(ValidationError) as caught:
        SignedPickleSerializer("short")
    assert caught.value.context["field"] == "signing_key"
    with pytest.raises(ValidationError, match="signing key"):
        make_serializer("pickle")
    assert "k" * 32 not in repr(SignedPickleSerializer("k" * 32))


def test_make_serializer_by_name() -> None:
    assert make_serializer("json").name == "json"
    assert make_serializer("msgpack").name == "msgpack"
    assert make_serializer("pickle", "k" * 32).name == "pickle"
    with pytest.raises(ValidationError, match="serializer must be one of"):
        make_serializer("yaml")
