"""Realtime apps under a real uvicorn (in a thread), and small WebSocket client helpers for the tests."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
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
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, ws="websockets-sansio", lifespan="off"
    )
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


async def messages(socket: ClientConnection, timeout: float = WAIT) -> list[dict[str, Any]]:  # noqa: ASYNC109 - a bound on the wait
    """The JSON messages of the next frame (a frame may hold several, one per line)."""
    frame = await asyncio.wait_for(socket.recv(), timeout)
    assert isinstance(frame, str)
    return [json.loads(line) for line in frame.split("\n")]


async def until(socket: ClientConnection, kind: str, timeout: float = WAIT) -> list[dict[str, Any]]:  # noqa: ASYNC109 - a bound on the wait
    """Every message up to the frame holding the first of type ``kind`` (that whole frame included)."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no {kind!r} message within {timeout} s; got {seen}"
        batch = await messages(socket, left)
        seen.extend(batch)
        if any(message["type"] == kind for message in batch):
            return seen


async def events(socket: ClientConnection, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:  # noqa: ASYNC109 - a bound on the wait
    """The next ``count`` event messages (control messages skipped)."""
    found: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(found) < count:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"only {len(found)} of {count} events within {timeout} s"
        found.extend(m for m in await messages(socket, left) if m["type"] == "event")
    return found


def last(seen: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The last message of type ``kind`` in ``seen``."""
    found = [message for message in seen if message["type"] == kind]
    assert found, f"no {kind!r} message in {seen}"
    return found[-1]


def stuck_client(address: str, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again (a tiny receive window)."""
    host, port = address.split(":")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect, so the window stays small
    raw.settimeout(WAIT)
    raw.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = raw.recv(1)  # byte by byte: nothing past the handshake is read
        assert chunk, "the server closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return raw
