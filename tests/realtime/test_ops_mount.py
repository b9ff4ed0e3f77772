"""The realtime endpoints on the ops server: its credentials; anonymous readers kept to the snapshot feed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from buttress.container import reset_container
from buttress.events import EventBus
from buttress.realtime import MemoryTopicLog, Realtime, set_realtime
from tests.server.conftest import ADMIN_TOKEN, build

from ._live import events, last, serving, until


@pytest.fixture
def ops_server() -> Iterator[tuple[Realtime, str]]:
    bus = EventBus()
    realtime = Realtime(bus=bus, log=MemoryTopicLog())
    set_realtime(realtime)
    try:
        with serving(build(admin_token=ADMIN_TOKEN).app) as address:
            yield realtime, address
    finally:
        reset_container()
        bus.close()


async def test_an_admin_follows_any_topic_on_the_ops_server(ops_server: tuple[Realtime, str]) -> None:
    realtime, server = ops_server
    protocols = ["buttress.v1", f"bearer.{ADMIN_TOKEN}"]
    async with connect(f"ws://{server}/realtime/ws?topics=jobs.**", subprotocols=protocols) as socket:
        await until(socket, "subscribed")
        realtime.publish("jobs.7.progress", {"progress": 0.5})
        got = await events(socket, 1)
    assert got[0]["topic"] == "jobs.7.progress"


async def test_an_anonymous_reader_gets_nothing_but_the_snapshot_topic(
    ops_server: tuple[Realtime, str],
) -> None:
    _realtime, server = ops_server
    async with connect(f"ws://{server}/realtime/ws?topics=jobs.**&topics=ops.snapshot&topics=**") as socket:
        seen = await until(socket, "subscribed")
    assert last(seen, "subscribed")["topics"] == ["ops.snapshot"]
    assert sorted(last(seen, "error")["topics"]) == ["**", "jobs.**"]
