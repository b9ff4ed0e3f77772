"""The http settings section: env variables, inheritance from the default policy, host matching, errors."""

from __future__ import annotations

import pytest

from buttress.config import HttpSettings, load_settings
from buttress.errors import ConfigError
from buttress.http import HttpPolicies, parse_retry_after
from buttress.rate import Rate


def _load(**env: str) -> HttpSettings:
    return load_settings(env_file=None, environ={f"BUTTRESS_{k}": v for k, v in env.items()}).http


def test_defaults() -> None:
    http = HttpSettings()
    assert (http.max_connections, http.default.bulkhead.max_concurrent) == (100, 20)  # total, per host
    assert http.default.retry.statuses == (429, 500, 502, 503, 504)
    assert http.default.retry.methods == ("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE")
    assert http.default.timeout.model_dump() == {"connect": 30.0, "read": 30.0, "write": 30.0, "pool": 30.0}
    assert http.default.deadline == 30.0


def test_a_named_policy_inherits_what_it_does_not_set() -> None:
    http = _load(
        HTTP__DEFAULT__RETRY__ATTEMPTS="4",
        HTTP__DEFAULT__DEADLINE="12",
        HTTP__POLICIES__SPOTIFY__HOSTS="api.spotify.com, *.Spotify.com",
        HTTP__POLICIES__SPOTIFY__LIMITER__RATE="10/s",
        HTTP__POLICIES__SPOTIFY__RETRY__STATUSES="[429, 503]",
        HTTP__POLICIES__SPOTIFY__RETRY__METHODS="get,post",
    )
    spotify = http.policies["spotify"]
    assert spotify.hosts == ("api.spotify.com", "*.spotify.com")
    assert spotify.limiter.rate == Rate(10, 1.0)  # stored parsed
    assert spotify.retry.attempts == 4  # from default
    assert spotify.deadline == 12
    assert spotify.retry.statuses == (429, 503)
    assert spotify.retry.methods == ("GET", "POST")
    assert http.default.limiter.rate is None


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("HTTP__POLICIES__X__HOSTS", "not a host!", "is not a host pattern"),
        ("HTTP__DEFAULT__RETRY__STATUSES", "200", "not an error status"),
        ("HTTP__DEFAULT__RETRY__ATTEMPTS", "0", "greater than or equal to 1"),
        ("HTTP__POLICIES__X__LIMITER__RATE", "ten per second", "rate"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, expected: str) -> None:
    env = {variable: value}
    if not variable.endswith("HOSTS") and "POLICIES" in variable:
        env["HTTP__POLICIES__X__HOSTS"] = "x.example.com"
    with pytest.raises(ConfigError) as caught:
        _load(**env)
    assert f"BUTTRESS_{variable}" in str(caught.value)
    assert expected in str(caught.value)


def test_a_named_policy_must_claim_hosts_once() -> None:
    with pytest.raises(ConfigError, match="BUTTRESS_HTTP__POLICIES__X__HOSTS"):
        _load(HTTP__POLICIES__X__RETRY__ATTEMPTS="2")
    with pytest.raises(ConfigError, match="claimed by both"):
        _load(HTTP__POLICIES__A__HOSTS="api.example.com", HTTP__POLICIES__B__HOSTS="api.example.com")


def test_hosts_match_exact_before_globs_and_longer_globs_first() -> None:
    http = HttpSettings.model_validate(
        {
            "policies": {
                "exact": {"hosts": ["api.example.com"]},
                "wide": {"hosts": ["*.com"]},
                "narrow": {"hosts": ["*.example.com"]},
                "port": {"hosts": ["127.0.0.1:8080"]},
                "anyport": {"hosts": ["localhost"]},
            }
        }
    )
    policies = HttpPolicies(http, store="memory")
    assert policies.policy_name("api.example.com") == "exact"
    assert policies.policy_name("cdn.example.com") == "narrow"
    assert policies.policy_name("other.com") == "wide"
    assert policies.policy_name("127.0.0.1:8080") == "port"
    assert policies.policy_name("127.0.0.1:9090") == "default"
    assert policies.policy_name("localhost:3000") == "anyport"
    assert policies.policy_name("example.org") == "default"
    first = policies.for_host("cdn.example.com")
    assert policies.for_host("cdn.example.com") is first
    assert policies.hosts() == ["cdn.example.com"]
    assert repr(first) == "HostPolicy('cdn.example.com', policy='narrow')"
    assert "1 hosts" in repr(policies)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        ("1.5", 1.5),
        ("-1", None),
        ("inf", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: now
        ("Thu, 01 Jan 2099 00:00:00 GMT", 4070908800.0 - 1_700_000_000.0),
        ("Thu, 01 Jan 2099 00:00:00 -0000", 4070908800.0 - 1_700_000_000.0),
    ],
)
def test_retry_after_header_forms(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, 1_700_000_000.0) == expected
