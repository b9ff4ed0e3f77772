"""podpromo's fixtures: the three services as fault-injecting upstreams, the app, a seeded episode."""

from __future__ import annotations

import random
import struct
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from buttress.config import reset_settings
from buttress.container import reset_container
from buttress.http import get_async_http_client
from buttress.testing import Fault, Upstream
from examples.podpromo.hosts import Hosts


def wav(size: int, seed: int = 0) -> bytes:
    """A valid WAV header over ``size`` seeded bytes of samples."""
    body = random.Random(seed).randbytes(size)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    return (
        b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", size) + body
    )


@pytest.fixture
def services(isolated_settings: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    """Flaky transcriber, rate-limited clip cutter, dead thumbnailer; their URLs and policies in the env."""
    with Upstream(seed=5) as upstream:
        upstream.add("transcribe", Fault(errors={503: 0.3}))
        upstream.add("clips", Fault(rate_limit="50/s"))
        upstream.add("thumbnails")
        upstream.set_down("thumbnails")
        hosts = Hosts(*(upstream.url(name).rstrip("/") for name in ("transcribe", "clips", "thumbnails")))
        for name, value in hosts.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("BUTTRESS_FILES__OWNER_QUOTA", "100KB")
        reset_settings()
        reset_container()
        yield upstream


@pytest.fixture
async def client(services: Upstream) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI, its lifespan run (tables created)."""
    from examples.podpromo.app import create_app

    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as http,
    ):
        yield http
    await get_async_http_client().aclose()  # the jobs' client on this test's loop
