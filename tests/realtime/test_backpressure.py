"""A slow or stuck client fills its own queue, never anyone else's; overflow is said, not silent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from buttress.clock import FakeClock

from ._live import WAIT, last, stuck_client, until
from .conftest import realtime_server

PAYLOAD = "x" * 16_384
NUMBER = re.compile(r'"data":\{"n":(\d+)')  # 16 KB per message, as the anchors' slow-consumer measurement


async def test_one_stuck_client_among_twenty_does_not_slow_the_healthy_ones() -> None:
    count = 600  # 16 KB each: ~10 MB, more than the kernel buffers a stuck socket can absorb
    clock = FakeClock()
    with realtime_server(clock=clock, retention=count, stall_timeout=30) as (realtime, server):
        with contextlib.closing(stuck_client(server, "/ws?topics=news.**")):
            healthy = [await connect(f"ws://{server}/ws?topics=news.**", max_size=None) for _ in range(19)]
            try:
                for client in healthy:
                    await until(client, "subscribed")

                async def publish() -> None:
                    for n in range(count):
                        realtime.publish("news.big", {"n": n, "pad": PAYLOAD})
                        if n % 10 == 9:
                            await asyncio.sleep(0.002)  # the clients share this process: let them read

                async def drain(client: ClientConnection) -> list[int]:
                    numbers: list[int] = []
                    while len(numbers) < count:  # a regex, not json.loads: 19 clients share this process
                        frame = await asyncio.wait_for(client.recv(), WAIT)
                        assert isinstance(frame, str)
                        assert '"type":"gap"' not in frame
                        numbers.extend(int(n) for n in NUMBER.findall(frame))
                    return numbers

                _, *received = await asyncio.gather(publish(), *(drain(client) for client in healthy))
                hub = next(iter(realtime._hubs.values()))
                # Its last batch may sit whole in the transport's buffer: one more message finds it blocked.
                realtime.publish("news.big", {"n": count, "pad": PAYLOAD})
                deadline = asyncio.get_running_loop().time() + WAIT
                while not [c for c in hub.connections if c.sending_since is not None]:
                    assert asyncio.get_running_loop().time() < deadline, (
                        "no writer is blocked on the stuck client"
                    )
                    await asyncio.sleep(0.05)
                assert len([c for c in hub.connections if c.sending_since is not None]) == 1
                clock.advance(31)  # past stall_timeout: it is closed as stuck
                deadline = asyncio.get_running_loop().time() + WAIT
                while len(hub.connections) > 19:
                    assert asyncio.get_running_loop().time() < deadline, "the stuck client was not closed"
                    await asyncio.sleep(0.05)
            finally:
                for client in healthy:
                    await client.close()
        assert all(numbers == list(range(count)) for numbers in received)


async def test_an_overflowing_client_gets_one_gap_marker_with_the_id_to_resume_from() -> None:
    with realtime_server(queue_size=5, retention=1000) as (realtime, server):
        async with connect(f"ws://{server}/ws?topics=news.**") as socket:
            await until(socket, "subscribed")
            hub = next(iter(realtime._hubs.values()))
            connection = next(iter(hub.connections))

            def flood() -> None:  # in one turn of the server's loop: the writer cannot drain in between
                for n in range(200):
                    connection.offer((json.dumps({"type": "event", "n": n}), f"e-{n}", None))

            hub.loop.call_soon_threadsafe(flood)
            realtime.publish("news.after", {"n": "after"})
            seen = await until(socket, "event", timeout=WAIT)
            while not any(message.get("topic") == "news.after" for message in seen):
                seen.extend(await until(socket, "event"))
    gaps = [message for message in seen if message["type"] == "gap"]
    assert len(gaps) == 1
    assert gaps[0]["dropped"] == 195
    assert gaps[0]["last_id"] == "e-4"
    flooded = [message["n"] for message in seen if message["type"] == "event" and "n" in message]
    assert flooded == [0, 1, 2, 3, 4]
    assert last(seen, "event")["topic"] == "news.after"
    assert connection.dropped == 195


async def test_overflow_close_closes_the_slow_client_with_1013() -> None:
    with realtime_server(queue_size=5, overflow="close") as (realtime, server):
        async with connect(f"ws://{server}/ws?topics=news.**") as socket:
            await until(socket, "subscribed")
            hub = next(iter(realtime._hubs.values()))
            connection = next(iter(hub.connections))

            def flood() -> None:
                for n in range(50):
                    connection.offer((json.dumps({"type": "event", "n": n}), None, None))

            hub.loop.call_soon_threadsafe(flood)
            try:
                while True:
                    await asyncio.wait_for(socket.recv(), WAIT)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
    assert code == 1013


async def test_heartbeats_are_sent_and_an_idle_client_is_closed() -> None:
    clock = FakeClock()
    with realtime_server(clock=clock, heartbeat=10, idle_timeout=30) as (_realtime, server):
        async with connect(f"ws://{server}/ws") as socket:
            await until(socket, "welcome")
            clock.advance(10)
            await until(socket, "ping")
            await socket.send(json.dumps({"type": "pong"}))
            await asyncio.sleep(0.3)  # let the server read the pong (stamped at now = 10 s)
            clock.advance(25)  # 25 s since the pong: not idle yet
            await until(socket, "ping")
            clock.advance(6)  # 31 s since the pong
            try:
                while True:
                    await asyncio.wait_for(socket.recv(), WAIT)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
    assert code == 1001
