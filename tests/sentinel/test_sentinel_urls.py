"""Sentinel URLs: what they name, and the errors for a bad one (no server needed)."""

from __future__ import annotations

from typing import Any

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


def test_no_primary_found_names_each_sentinel_by_address_not_by_its_client_repr() -> None:
    """redis-py quotes each sentinel client's repr (2 kB each) in every outage log and health check."""
    import asyncio

    from buttress._redis._client import module, pool_options
    from tests._ports import free_port

    ports = [free_port(), free_port()]
    url = f"redis+sentinel://:data-pw@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/orders?sentinel_password=s-pw"
    target = sentinel_target(url)
    not_found = module("redis.exceptions").ConnectionError  # redis-py's two MasterNotFoundErrors' base
    pool: Any = target.sync_pool(**pool_options(0.2, 2))
    with pytest.raises(not_found) as caught:
        pool.get_master_address()
    message = str(caught.value)
    assert all(f"127.0.0.1:{port}" in message for port in ports)
    assert "redis.client.Redis" not in message
    assert len(message) < 300
    assert "MasterNotFoundError" in type(caught.value).__name__

    async def discover() -> str:
        apool: Any = target.async_pool(**pool_options(0.2, 2, is_async=True))
        try:
            await apool.get_master_address()
        except not_found as exc:
            return str(exc)
        finally:
            await apool.disconnect()
        return ""

    message = asyncio.run(discover())
    assert all(f"127.0.0.1:{port}" in message for port in ports)
    assert "redis.asyncio.client.Redis" not in message
