"""Realtime apps under a real uvicorn (in a thread), and small WebSocket client helpers for the tests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from websockets.asyncio.client import ClientConnection

STARTUP_SECONDS = 20.0
WAIT = 10.0  # seconds a test waits for something that should come at once


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn (websockets protocol) on a free loopback port; yield ``host:port``."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, ws="websockets-sansio", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-realtime-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:  # bounded wait for the socket to be bound
        assert thread.is_alive(), "uvicorn stopped during startup"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_SECONDS)


async def messages(socket: ClientConnection, timeout: float = WAIT) -> list[dict[str, Any]]:
    """The JSON messages of the next frame (a frame may hold several, one per line)."""
    frame = await asyncio.wait_for(socket.recv(), timeout)
    assert isinstance(frame, str)
    return [json.loads(line) for line in frame.split("\n")]


async def until(socket: ClientConnection, kind: str, timeout: float = WAIT) -> list[dict[str, Any]]:
    """Every message up to and including the first of type ``kind``."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no {kind!r} message within {timeout} s; got {seen}"
        for message in await messages(socket, left):
            seen.append(message)
            if message["type"] == kind:
                return seen


async def events(socket: ClientConnection, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
    """The next ``count`` event messages (control messages skipped)."""
    found: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(found) < count:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"only {len(found)} of {count} events within {timeout} s"
        found.extend(m for m in await messages(socket, left) if m["type"] == "event")
    return found
