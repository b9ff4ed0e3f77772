"""The secret values the process knows: collected from settings, added to, and scrubbed from text."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr

from buttress._redaction import escape_control_characters, mask_credential_params, secret_values_of
from buttress.config import Settings, reset_settings
from buttress.errors import MASK
from buttress.observe.secrets import SecretScrubber, get_secret_scrubber, register_secrets, scrub


@pytest.fixture(autouse=True)
def _isolated(isolated_settings: None) -> None:
    """Each test starts with a fresh container (so a fresh process-wide scrubber) and no BUTTRESS_* env."""


class _Nested(BaseModel):
    dsn: SecretStr = SecretStr("postgresql://u:dsn-pass-1@db/x")
    blob: SecretBytes = SecretBytes(b"bytes-secret")
    urls: dict[str, str] = {"a": "redis://:map%40pass@h:6379/0", "b": "redis://h:6379/0"}
    short: SecretStr = SecretStr("abc")


class _Root(BaseModel):
    nested: _Nested = _Nested()
    items: list[str] = ["amqp://guest:list-pass@mq//"]
    plain: str = "not a secret"
    api_token: str = "plain-api-token"  # a plain str, but its name says what it holds
    headers: dict[str, str] = {"Authorization": "Bearer hdr-token-123", "Accept": "application/json"}
    token_count: int = 12345


def test_secret_values_are_collected_from_nested_models_mappings_and_sequences() -> None:
    assert secret_values_of(_Root()) == {
        "postgresql://u:dsn-pass-1@db/x",
        "dsn-pass-1",
        "bytes-secret",
        "map%40pass",
        "map@pass",  # percent-decoded: an error message may show either
        "list-pass",
        "plain-api-token",
        "Bearer hdr-token-123",
        "hdr-token-123",
    }  # "abc" is shorter than MIN_SECRET_LENGTH, "not a secret" is no secret


def test_the_default_scrubber_knows_the_secrets_of_get_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_SECURITY__ADMIN_TOKEN", "env-admin-token-0123456789")
    monkeypatch.setenv("BUTTRESS_REDIS_URL", "redis://:env-redis-pass@127.0.0.1:6379/2")
    reset_settings()
    assert scrub("token env-admin-token-0123456789, pass env-redis-pass") == f"token {MASK}, pass {MASK}"


def test_the_default_scrubber_starts_empty_when_the_settings_do_not_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BUTTRESS_REDIS_URL", "not-a-url")
    reset_settings()
    assert get_secret_scrubber().values == ()
    monkeypatch.delenv("BUTTRESS_REDIS_URL")
    register_secrets(Settings(_env_file=None, security={"admin_token": "later-token-0123"}))
    assert scrub("later-token-0123") == MASK


def test_a_secret_containing_another_is_masked_whole() -> None:
    scrubber = SecretScrubber(["pass-1234", "my-pass-1234-long"])
    assert scrubber.values == ("my-pass-1234-long", "pass-1234")
    assert scrubber.scrub("a my-pass-1234-long b pass-1234") == f"a {MASK} b {MASK}"
    assert "pass" not in repr(scrubber)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("/cb?code=abc123&state=xyz", f"/cb?code={MASK}&state=xyz"),
        ("/x?Token=a;Sig=b", f"/x?Token={MASK};Sig={MASK}"),
        ("/s3?X-Amz-Signature=f00d&X-Amz-Date=2026", f"/s3?X-Amz-Signature={MASK}&X-Amz-Date=2026"),
        ("?accessToken=a&client-secret=b", f"?accessToken={MASK}&client-secret={MASK}"),
        ("password='hunter 2' user=ann", f"password={MASK} user=ann"),
        ("cache key=user:1 code=7 sig=x", "cache key=user:1 code=7 sig=x"),  # not in a query string
        ("a==b, x=, ?=1, token_count=3", "a==b, x=, ?=1, token_count=3"),
    ],
)
def test_credential_parameters(text: str, masked: str) -> None:
    assert mask_credential_params(text) == masked


def test_control_characters_are_escaped() -> None:
    assert escape_control_characters("a\r\nb\x1b[0m\x00\u2028\tc") == "a\\r\\nb\\x1b[0m\\x00\\u2028\tc"
    assert escape_control_characters("line 1\nline 2\r", keep_newlines=True) == "line 1\nline 2\\r"
    assert escape_control_characters("plain text") == "plain text"
