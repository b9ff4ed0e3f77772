"""Sentinel URLs: what they name, and the errors for a bad one (no server needed)."""

from __future__ import annotations

import pytest

from buttress._redis import RedisConnection, mask_text, mask_url
from buttress._redis._sentinel import SENTINEL_PORT, sentinel_target
from buttress.errors import ValidationError

URL = "redis+sentinel://:data-pw@10.0.0.1:26380,[::1],sentinel.local:5000/orders/3?sentinel_password=sentinel-pw"


def test_a_sentinel_url_names_the_sentinels_the_service_the_database_and_both_passwords() -> None:
    target = sentinel_target(URL)
    assert target.sentinels == [("10.0.0.1", 26380), ("::1", SENTINEL_PORT), ("sentinel.local", 5000)]
    assert target.service == "orders"
    assert target.data_options == {"password": "data-pw", "db": 3}
    assert target.sentinel_password == "sentinel-pw"
    assert not target.tls
    assert "pw" not in repr(target)


def test_rediss_sentinel_speaks_tls_to_the_data_nodes_and_keeps_the_query_options() -> None:
    target = sentinel_target("rediss+sentinel://10.0.0.1/cache?protocol=3&ssl_cert_reqs=none")
    assert target.tls
    assert target.data_options == {"db": 0, "protocol": 3, "ssl_cert_reqs": "none"}


def test_both_passwords_are_masked() -> None:
    shown = mask_url(URL)
    assert "data-pw" not in shown
    assert "sentinel-pw" not in shown
    assert mask_text("failed: data-pw / sentinel-pw", URL) == "failed: ********** / **********"


@pytest.mark.parametrize("path", ["", "/", "/two words", "/orders/zero", "/orders/0/extra", "/-leading-dash"])
def test_a_missing_or_bad_service_is_a_validation_error_naming_the_field(path: str) -> None:
    url = f"redis+sentinel://:data-pw@10.0.0.1:26379{path}?sentinel_password=sentinel-pw"
    with pytest.raises(ValidationError, match=r"must name the Sentinel service") as info:
        RedisConnection(url, url_field="redis_url")
    assert info.value.field == "redis_url"
    assert "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0" in str(info.value)
    assert "data-pw" not in str(info.value)
    assert "sentinel-pw" not in str(info.value)


def test_a_bad_query_option_is_a_validation_error_with_passwords_masked() -> None:
    with pytest.raises(ValidationError, match="not a valid Redis URL") as info:
        sentinel_target("redis+sentinel://:data-pw@10.0.0.1/orders?socket_timeout=soon", "redis_url")
    assert info.value.field == "redis_url"
    assert "data-pw" not in str(info.value)
