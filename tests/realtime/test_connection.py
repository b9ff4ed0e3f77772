"""The connection's queue on its own: dedupe by position, held entries during a replay, gap markers."""

from __future__ import annotations

import json

from buttress.realtime import Entry
from buttress.realtime._connection import Connection
from buttress.realtime._entry import encode_entry


def _entry(position: int, epoch: str = "e1") -> Entry:
    return Entry(epoch, position, "news.a", position, {"n": position}, 0.0)


def _connection(queue_size: int = 100) -> Connection:
    return Connection(transport="ws", identity=None, queue_size=queue_size, overflow="gap", now=0.0)


async def _drain(connection: Connection) -> list[dict[str, object]]:
    batch = await anext(connection.batches())
    return [json.loads(frame) for frame, _id, _time in batch]


async def test_an_entry_at_or_below_the_last_position_of_the_epoch_is_a_duplicate() -> None:
    connection = _connection()
    for position in (1, 2, 2, 1, 3):
        entry = _entry(position)
        connection.offer_entry(entry, encode_entry(entry))
    fresh = _entry(1, epoch="e2")  # a new epoch starts again at 1
    connection.offer_entry(fresh, encode_entry(fresh))
    assert [(m["id"]) for m in await _drain(connection)] == ["e1-1", "e1-2", "e1-3", "e2-1"]


async def test_live_entries_held_during_a_replay_follow_it_minus_what_it_covered() -> None:
    connection = _connection()
    connection.replaying = True
    for position in (4, 5, 6):  # live entries arriving while the replay is read
        entry = _entry(position)
        connection.offer_entry(entry, encode_entry(entry))
    for position in (2, 3, 4, 5):  # the replay, queued directly
        entry = _entry(position)
        connection.offer((encode_entry(entry), entry.id, entry.time))
        connection.epoch, connection.position = entry.epoch, entry.position
    connection.end_replay()
    assert [m["id"] for m in await _drain(connection)] == ["e1-2", "e1-3", "e1-4", "e1-5", "e1-6"]


async def test_entries_held_past_the_queue_size_become_one_gap_after_the_held_ones() -> None:
    connection = _connection(queue_size=3)
    connection.replaying = True
    for position in range(1, 11):
        entry = _entry(position)
        connection.offer_entry(entry, encode_entry(entry))
    connection.end_replay()
    drained = await _drain(connection)
    assert [m.get("id") for m in drained[:3]] == ["e1-1", "e1-2", "e1-3"]
    assert drained[3] == {"type": "gap", "dropped": 7, "last_id": "e1-3"}
    assert connection.dropped == 7


async def test_a_gap_is_announced_even_when_nothing_follows_it() -> None:
    connection = _connection()
    connection.missed(5, "e1-9")
    assert await _drain(connection) == [{"type": "gap", "dropped": 5, "last_id": "e1-9"}]


async def test_a_closing_connection_stops_its_writer_and_takes_nothing_more() -> None:
    connection = _connection()
    connection.close(1008, "the token expired")
    entry = _entry(1)
    assert connection.offer_entry(entry, encode_entry(entry)) is False
    assert [batch async for batch in connection.batches()] == []
    assert connection.closing is not None
    assert connection.closing.code == 1008
