"""Serializer safety: JSON and msgpack round-trip; pickle only signed, and tampering is refused."""

from __future__ import annotations

import pickle

import pytest

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
