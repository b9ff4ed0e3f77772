"""1,000 reconnects with resume while events keep coming: every event exactly once, in order."""

from __future__ import annotations

import random
import threading

from websockets.asyncio.client import connect

from buttress.realtime import Realtime

from ._live import WAIT, messages
from .conftest import realtime_server

RECONNECTS = 1000


def _publisher(realtime: Realtime, stop: threading.Event, published: list[int]) -> threading.Thread:
    def run() -> None:
        n = 0
        while not stop.wait(0.0005):
            realtime.publish("news.seq", {"n": n})
            published.append(n)
            n += 1

    thread = threading.Thread(target=run, name="storm-publisher", daemon=True)
    thread.start()
    return thread


async def _resume_storm(realtime: Realtime, server: str) -> tuple[list[int], list[int], int]:
    received: list[int] = []
    last_id: str | None = None
    resets = 0
    chooser = random.Random(17)
    stop = threading.Event()
    published: list[int] = []
    thread = _publisher(realtime, stop, published)
    try:
        for _ in range(RECONNECTS):
            url = f"ws://{server}/ws?topics=news.*" + (f"&last_id={last_id}" if last_id else "")
            socket = await connect(url)
            wanted = chooser.randint(1, 4)
            got = 0
            while got < wanted:
                for message in await messages(socket):
                    if message["type"] == "reset":
                        resets += 1
                    if message["type"] == "event":
                        received.append(message["data"]["n"])
                        last_id = message["id"]
                        got += 1
            socket.transport.abort()  # drop the TCP connection mid-stream, no close handshake
    finally:
        stop.set()
        thread.join(WAIT)
    assert realtime.flush()
    async with connect(f"ws://{server}/ws?topics=news.*&last_id={last_id}") as socket:
        while not received or received[-1] < published[-1]:
            received.extend(m["data"]["n"] for m in await messages(socket) if m["type"] == "event")
    return received, published, resets


async def test_a_thousand_reconnects_with_resume_miss_nothing_and_repeat_nothing() -> None:
    with realtime_server(retention=1_000_000) as (realtime, server):
        received, published, resets = await _resume_storm(realtime, server)
    assert resets == 0
    # From the first event the first connection saw (it had no id to resume from) to the last published:
    assert received == published[published.index(received[0]) :]  # no gap, no duplicate, in order
    assert len(received) > RECONNECTS
