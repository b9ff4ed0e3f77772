"""The WebSocket endpoint over real sockets: topics, ids and offsets, resume, subscriptions."""

from __future__ import annotations

import json

from websockets.asyncio.client import connect

from buttress.realtime import Realtime

from ._live import events, last, until


async def test_a_subscriber_receives_matching_events_with_ids_and_offsets(
    served: tuple[Realtime, str],
) -> None:
    realtime, server = served
    async with connect(f"ws://{server}/ws?topics=news.*") as socket:
        welcome = (await until(socket, "subscribed"))[0]
        realtime.publish("news.posted", {"n": 1})
        realtime.publish("other.thing", {"n": 2})
        realtime.publish("news.posted", {"n": 3})
        got = await events(socket, 2)
    assert welcome["type"] == "welcome"
    assert [event["data"]["n"] for event in got] == [1, 3]
    assert [event["offset"] for event in got] == [1, 2]
    assert got[0]["id"] == f"{welcome['epoch']}-1"
    assert got[1]["id"] == f"{welcome['epoch']}-3"


async def test_resume_replays_what_was_missed_without_gap_or_duplicate(served: tuple[Realtime, str]) -> None:
    realtime, server = served
    async with connect(f"ws://{server}/ws?topics=news.**") as socket:
        await until(socket, "subscribed")
        realtime.publish("news.a", {"n": 1})
        first = await events(socket, 1)
    for n in range(2, 6):
        realtime.publish("news.a", {"n": n})
        realtime.publish("elsewhere", {"n": -n})
    assert realtime.flush()
    async with connect(f"ws://{server}/ws?topics=news.**&last_id={first[0]['id']}") as socket:
        replayed = await events(socket, 4)
        realtime.publish("news.a", {"n": 6})
        live = await events(socket, 1)
    assert [event["data"]["n"] for event in replayed + live] == [2, 3, 4, 5, 6]


async def test_an_id_older_than_the_retention_gets_an_explicit_reset(served: tuple[Realtime, str]) -> None:
    realtime, server = served
    async with connect(f"ws://{server}/ws?topics=news.**") as socket:
        await until(socket, "subscribed")
        realtime.publish("news.a", {"n": 0})
        first = await events(socket, 1)
    for n in range(150):  # the fixture keeps 100
        realtime.publish("news.a", {"n": n})
    assert realtime.flush()
    async with connect(f"ws://{server}/ws?topics=news.**&last_id={first[0]['id']}") as socket:
        seen = await until(socket, "reset")
        realtime.publish("news.a", {"n": "live"})
        live = await events(socket, 1)
    assert last(seen, "reset")["reason"] == "retention"
    assert not [message for message in seen if message["type"] == "event"]
    assert live[0]["data"]["n"] == "live"


async def test_an_id_of_another_epoch_gets_an_explicit_reset(served: tuple[Realtime, str]) -> None:
    _realtime, server = served
    async with connect(f"ws://{server}/ws?topics=news.**&last_id=deadbeef-12") as socket:
        seen = await until(socket, "reset")
    assert last(seen, "reset")["reason"] == "epoch"


async def test_subscribe_and_unsubscribe_by_message(served: tuple[Realtime, str]) -> None:
    realtime, server = served
    async with connect(f"ws://{server}/ws") as socket:
        await socket.send(json.dumps({"type": "subscribe", "topics": ["news.a", "news.b"]}))
        assert last(await until(socket, "subscribed"), "subscribed")["topics"] == ["news.a", "news.b"]
        await socket.send(json.dumps({"type": "unsubscribe", "topics": ["news.a"]}))
        assert last(await until(socket, "subscribed"), "subscribed")["topics"] == ["news.b"]
        realtime.publish("news.a", {"n": 1})
        realtime.publish("news.b", {"n": 2})
        got = await events(socket, 1)
    assert got[0]["data"] == {"n": 2}


async def test_a_bad_message_is_answered_with_an_error_naming_the_field(served: tuple[Realtime, str]) -> None:
    _realtime, server = served
    async with connect(f"ws://{server}/ws") as socket:
        await socket.send("not json")
        first = await until(socket, "error")
        await socket.send(json.dumps({"type": "subscribe", "topics": ["news.*x"]}))
        second = await until(socket, "error")
        await socket.send(json.dumps({"type": "subscribe", "topics": ["news.*"], "last_id": "nope"}))
        third = await until(socket, "error")
    assert first[-1]["field"] == "type"
    assert second[-1]["field"] == "topics"
    assert third[-1]["field"] == "last_id"
