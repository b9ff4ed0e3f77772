"""What a careless or hostile client sends: every case answered, none able to stall the server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from buttress.errors import ValidationError
from buttress.events import EventBus
from buttress.realtime import Identity, MemoryTopicLog, Realtime, parse_id, realtime_router

from ._live import WAIT, events, last, serving, until
from .conftest import realtime_server


async def _close_code(socket: object) -> int | None:
    try:
        while True:
            await socket.recv()  # type: ignore[attr-defined]
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def test_patterns_are_bounded_so_matching_stays_cheap() -> None:
    with realtime_server(public=("news.**",)) as (_realtime, server):
        async with connect(f"ws://{server}/ws") as socket:
            deep = "news." + ".".join(["**"] * 13) + ".nomatch"
            await socket.send(json.dumps({"type": "subscribe", "topics": [deep]}))
            refused = last(await until(socket, "error"), "error")
            many = [f"news.n{n}" for n in range(101)]
            await socket.send(json.dumps({"type": "subscribe", "topics": many}))
            too_many = last(await until(socket, "error"), "error")
    assert refused["field"] == "topics"
    assert "at most" in refused["message"]
    assert too_many["field"] == "topics"


def test_chained_double_stars_match_in_linear_time() -> None:
    from buttress.events import compile_pattern

    pattern = compile_pattern("a." + ".".join(["**"] * 30) + ".z")
    started = time.perf_counter()
    assert not pattern.matches("a." + ".".join(["x"] * 40))
    assert pattern.matches("a.b.c.z")
    assert time.perf_counter() - started < 0.1


async def test_binary_frames_and_deep_json_are_answered_not_fatal() -> None:
    with realtime_server() as (realtime, server):
        async with connect(f"ws://{server}/ws?topics=news.*") as socket:
            await until(socket, "subscribed")
            await socket.send(b'{"type": "pong"}')
            await socket.send("[" * 50_000)
            error = last(await until(socket, "error"), "error")
            realtime.publish("news.still", {"ok": True})
            got = await events(socket, 1)
    assert error["code"] == "invalid"
    assert got[0]["data"] == {"ok": True}


@pytest.fixture
def failing_hook_server() -> Iterator[str]:
    def authorize(identity: Identity | None, pattern: str) -> bool:
        raise RuntimeError("the hook is broken")

    with EventBus() as bus, Realtime(bus=bus, log=MemoryTopicLog()) as realtime:
        app = FastAPI()
        app.include_router(realtime_router(realtime, authorize=authorize))
        with serving(app) as address:
            yield address


async def test_a_failing_authorize_hook_refuses_and_keeps_the_connection(failing_hook_server: str) -> None:
    async with connect(f"ws://{failing_hook_server}/ws?topics=news.*") as socket:
        seen = await until(socket, "subscribed")
        await socket.send(json.dumps({"type": "subscribe", "topics": ["other.*"]}))
        again = await until(socket, "subscribed")
    assert last(seen, "error")["code"] == "forbidden"
    assert last(again, "subscribed")["topics"] == []


@pytest.mark.parametrize("value", ["abc-²", "abc-①", "abc-", "-12", "abc-1.5", 12, None])
def test_ids_that_are_not_ours_are_a_validation_error(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_id(value)
    assert caught.value.field == "last_id"


async def test_a_resume_longer_than_the_queue_arrives_whole_even_with_overflow_close() -> None:
    with realtime_server(queue_size=20, overflow="close", retention=1000) as (realtime, server):
        async with connect(f"ws://{server}/ws?topics=news.*") as socket:
            await until(socket, "subscribed")
            realtime.publish("news.a", {"n": 0})
            first = await events(socket, 1)
        for n in range(1, 201):
            realtime.publish("news.a", {"n": n})
        assert realtime.flush()
        async with connect(f"ws://{server}/ws?topics=news.*&last_id={first[0]['id']}") as socket:
            replayed = await events(socket, 200, timeout=WAIT)
    assert [event["data"]["n"] for event in replayed] == list(range(1, 201))


async def test_a_close_reason_quoting_a_long_unicode_pattern_still_closes_with_1008() -> None:
    with realtime_server() as (_realtime, server):
        async with connect(f"ws://{server}/ws?topics={'é' * 100}.*x") as socket:
            code = await _close_code(socket)
    assert code == 1008
