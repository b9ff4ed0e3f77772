"""Shared fixtures: real services, with a skip locally and a failure under BUTTRESS_REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

# The fixtures users get from buttress's pytest11 plugin (``upstream``, ``upstream_factory``). The plugin
# itself is disabled here (``-p no:buttress`` in pyproject): loaded as a plugin it would import buttress
# before coverage starts measuring.
from buttress.testing.pytest_plugin import upstream, upstream_factory

__all__ = ["upstream", "upstream_factory"]

REDIS_URL = os.environ.get("BUTTRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DATABASE_URL = os.environ.get("BUTTRESS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def services_required() -> bool:
    return os.environ.get("BUTTRESS_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}


def _reachable(url: str, default_port: int) -> str | None:
    """Return None when a TCP connection to the URL's host and port succeeds, else the reason."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc})"


def need_service(name: str, url: str, default_port: int) -> str:
    reason = _reachable(url, default_port)
    if reason is None:
        return url
    message = f"{name} is needed by this test: {reason}"
    if services_required():
        pytest.fail(message + " and BUTTRESS_REQUIRE_SERVICES=1 turns the skip into a failure", pytrace=False)
    pytest.skip(message)
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis server (database 15 by default, flushed per test by ``redis_client``)."""
    return need_service("Redis", REDIS_URL, 6379)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def database_url() -> str:
    """URL of a real PostgreSQL server."""
    return need_service("PostgreSQL", DATABASE_URL, 5432)


@pytest.fixture(scope="session")
def database_pooler() -> str:
    """What ``database_url`` points at (``db.pooler``): the server itself; tests/pgbouncer says pgbouncer."""
    return "none"


@pytest.fixture
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Iterator[None]:
    """An empty working directory, no BUTTRESS_* settings (test-service ones kept), fresh defaults.

    One reset for every process-wide object (the default container closes what it built), plus settings.
    """
    from buttress.config import reset_settings
    from buttress.container import reset_container

    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith("BUTTRESS_") and not upper.startswith(("BUTTRESS_TEST_", "BUTTRESS_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(str(tmp_path))
    reset_settings()
    reset_container()
    yield
    reset_container()
    reset_settings()
