"""URL and prefix checks: a ValidationError naming the field, and never a password in a message or repr."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from buttress._extras import MissingExtra
from buttress._redis import (
    PubSubConnections,
    RedisConnection,
    check_prefix,
    check_url,
    hosts,
    mask_text,
    mask_url,
    topology,
)
from buttress._redis._client import module
from buttress.errors import ValidationError


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://h:6380", "unix:///tmp/redis.sock"])
def test_redis_urls_pass(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize("bad", ["http://localhost:6379", "localhost:6379", "redis://[::1", 6379, None])
def test_other_urls_name_the_field_and_the_fix(bad: object) -> None:
    with pytest.raises(
        ValidationError,
        match=r"must be a redis://, rediss://, unix://, redis\+sentinel:// or redis\+cluster:// URL",
    ) as info:
        check_url(bad, "redis_url")
    assert info.value.field == "redis_url"
    assert "e.g. redis://127.0.0.1:6379/0" in str(info.value)


def test_a_password_never_shows_in_an_error() -> None:
    with pytest.raises(ValidationError) as info:
        check_url("http://user:hunter2@example.com")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValidationError, match="not a valid Redis URL") as info:
        check_url("redis://:hunter2@localhost:notaport/0")
    assert info.value.field == "url"
    assert "hunter2" not in str(info.value)


def test_masking_covers_the_authority_and_the_query() -> None:
    assert mask_url("redis://user:pw@host:6379/0") == "redis://user:**********@host:6379/0"
    assert mask_url("redis://:pw@host/0") == "redis://:**********@host/0"
    assert mask_url("redis://host/0?password=pw&db=1") == "redis://host/0?password=**********&db=1"
    assert mask_url("redis://user@host/0") == "redis://user@host/0"
    assert mask_url("redis://[::1") == "<unparseable URL>"
    url = "redis://:s3cret@host/0?password=other"
    assert mask_text("auth failed for s3cret and other", url) == "auth failed for ********** and **********"


def test_reprs_mask_the_password() -> None:
    connection = RedisConnection("redis://app:hunter2@127.0.0.1:1/0", prefix="svc")
    pubsub = PubSubConnections("redis://app:hunter2@127.0.0.1:1/0")
    try:
        shown = "RedisConnection('redis://app:**********@127.0.0.1:1/0', prefix='svc', available)"
        assert repr(connection) == shown
        assert "hunter2" not in repr(pubsub)
        assert "hunter2" not in connection.label
    finally:
        connection.close()
        pubsub.disconnect()


@pytest.mark.parametrize("bad", ["", "a b", "tab\tbed", "{tag}", None, 3])
def test_a_prefix_is_one_word_without_braces(bad: object) -> None:
    with pytest.raises(ValidationError, match="without whitespace or braces") as info:
        check_prefix(bad)
    assert info.value.field == "prefix"
    assert check_prefix("orders:cache") == "orders:cache"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timeout": 0}, "socket_timeout"),
        ({"timeout": True}, "socket_timeout"),
        ({"max_connections": 0}, "max_connections"),
        ({"reconnect_min": 0}, "reconnect_min"),
        ({"prefix": "a b"}, "prefix"),
    ],
)
def test_connection_options_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RedisConnection("redis://127.0.0.1:1/0", **options)  # type: ignore[arg-type]
    assert info.value.field == field


def test_a_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what an install without buttress[redis] looks like
    with pytest.raises(MissingExtra, match=r"pip install 'buttress\[redis\]'"):
        module()
    with pytest.raises(MissingExtra, match=r"buttress\[redis\]"):
        RedisConnection("redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "standalone"),
        ("unix:///run/redis.sock", "standalone"),
        ("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster/0", "sentinel"),
        ("REDIS+CLUSTER://10.0.0.1:7000,10.0.0.2:7001", "cluster"),
    ],
)
def test_the_scheme_names_the_topology(url: str, expected: str) -> None:
    assert topology(check_url(url)) == expected


def test_every_host_of_a_seed_list_is_checked_and_listed() -> None:
    url = "redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7001"
    assert hosts(url) == ["10.0.0.1:7000", "10.0.0.2:7001"]
    with pytest.raises(ValidationError, match="not a valid Redis URL") as info:
        check_url("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:port")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+cluster://", "names no seed node"),
        ("redis+cluster://:s3cret@", "names no seed node"),
        ("redis+sentinel://:s3cret@/mymaster", "names no sentinel"),
        ("redis+cluster://:s3cret@10.0.0.1:7000/3", "only database 0"),
        ("redis+cluster://:s3cret@10.0.0.1:7000?db=2", "only database 0"),
        ("redis+sentinel://:s3cret@10.0.0.1:26379", "must name the Sentinel service"),
        ("rediss+cluster://:s3cret@10.0.0.1:7000?ssl_cert_reqs=none", "does not take"),
    ],
)
def test_a_seed_list_url_without_hosts_service_or_with_a_cluster_db_is_refused_up_front(
    url: str, reason: str
) -> None:
    builds: list[Callable[[], object]] = [
        lambda: check_url(url, "redis_url"),
        lambda: RedisConnection(url, url_field="redis_url"),
        lambda: PubSubConnections(url, url_field="redis_url"),
    ]
    for build in builds:
        with pytest.raises(ValidationError, match=reason) as info:
            build()
        assert info.value.field == "redis_url"
        assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("url", ["redis+cluster://10.0.0.1:7000/", "redis+cluster://10.0.0.1:7000/0"])
def test_a_cluster_url_may_spell_out_database_zero(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "redis://:ab#cd@127.0.0.1:6379/0",
        "redis+cluster://:ab/cd@10.0.0.1:7000",
        "redis://:12?cd@10.0.0.1:6379",
        "redis+sentinel://:ab#cd@10.0.0.1:26379/mymaster?sentinel_password=ab@cd",
    ],
)
def test_a_password_with_an_unescaped_delimiter_is_masked_whole_and_refused(url: str) -> None:
    shown = mask_url(url)
    assert "ab" not in shown
    assert "cd" not in shown
    with pytest.raises(ValidationError, match="percent-encode") as info:
        check_url(url, "redis_url")
    assert "ab" not in str(info.value)
    assert "cd" not in str(info.value)
