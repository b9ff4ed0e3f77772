"""The WebSocket endpoint over real sockets: topics, ids, resume, auth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect

from buttress.events import EventBus
from buttress.realtime import MemoryTopicLog, Realtime, realtime_router

from ._live import events, serving, until


@pytest.fixture
def realtime() -> Iterator[Realtime]:
    with EventBus() as bus, Realtime(bus=bus, log=MemoryTopicLog(retention=100)) as realtime:
        yield realtime


@pytest.fixture
def server(realtime: Realtime) -> Iterator[str]:
    app = FastAPI()
    app.include_router(realtime_router(realtime, public=["news.**"]))
    with serving(app) as address:
        yield address


async def test_a_subscriber_receives_matching_events_with_ids_and_offsets(realtime: Realtime, server: str) -> None:
    async with connect(f"ws://{server}/ws?topics=news.*") as socket:
        await until(socket, "subscribed")
        realtime.publish("news.posted", {"n": 1})
        realtime.publish("other.thing", {"n": 2})
        realtime.publish("news.posted", {"n": 3})
        got = await events(socket, 2)
    assert [event["data"]["n"] for event in got] == [1, 3]
    assert [event["offset"] for event in got] == [1, 2]
    epoch = got[0]["id"].rsplit("-", 1)[0]
    assert got[1]["id"] == f"{epoch}-3"


async def test_resume_replays_what_was_missed_without_gap_or_duplicate(realtime: Realtime, server: str) -> None:
    async with connect(f"ws://{server}/ws?topics=news.**") as socket:
        await until(socket, "subscribed")
        realtime.publish("news.a", {"n": 1})
        first = await events(socket, 1)
    for n in range(2, 6):
        realtime.publish("news.a", {"n": n})
    realtime.flush()
    async with connect(f"ws://{server}/ws?topics=news.**&last_id={first[0]['id']}") as socket:
        replayed = await events(socket, 4)
        realtime.publish("news.a", {"n": 6})
        live = await events(socket, 1)
    assert [event["data"]["n"] for event in replayed + live] == [2, 3, 4, 5, 6]


async def test_an_anonymous_client_is_refused_a_protected_topic(realtime: Realtime, server: str) -> None:
    async with connect(f"ws://{server}/ws?topics=secret.**") as socket:
        seen = await until(socket, "subscribed")
        realtime.publish("secret.plans", {"x": 1})
        realtime.publish("news.x", {"x": 2})
        realtime.flush()
        errors = [message for message in seen if message["type"] == "error"]
    assert errors and errors[0]["code"] == "forbidden"
    assert seen[-1]["topics"] == []
