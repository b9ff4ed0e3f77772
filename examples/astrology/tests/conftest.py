"""Fixtures of the astrology tests: the app on isolated settings with admin auth, run through its lifespan."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from buttress.config import reset_settings
from buttress.container import reset_container
from examples.astrology.app import create_app

ADMIN_TOKEN = "astrology-admin-token-0123456789"
JWT_KEY = "astrology-test-jwt-key-0123456789abcdef-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def configure(isolated_settings: None, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set ``BUTTRESS_*`` (and the app's own) variables (None: unset), then fresh settings and container."""

    def apply(**variables: str | None) -> None:
        defaults = {"BUTTRESS_SECURITY__ADMIN_TOKEN": ADMIN_TOKEN, "BUTTRESS_SERVER__JWT_KEY": JWT_KEY}
        for name, value in {**defaults, **variables}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        reset_settings()
        reset_container()

    return apply


@pytest.fixture
def astro_redis_url(redis_url: str) -> Iterator[str]:
    """The test Redis server's database 13 (this example's own), emptied before and after."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/13"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@contextmanager
def serving(app: FastAPI) -> Iterator[httpx.Client]:
    """``app`` under a real uvicorn (lifespan on) on a spare loopback port; a client for it."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="astrology-test-server", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), 20)
    assert server.started, "uvicorn stopped during startup"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture
def client(configure: Callable[..., None]) -> Iterator[httpx.Client]:
    """The app in development (the default environment), its lifespan run: tables made, warming started."""
    configure()
    with serving(create_app()) as http:
        yield http


def wait_for(condition: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Poll ``condition`` until it returns something truthy, within a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.01)
    return found
