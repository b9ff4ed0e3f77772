"""Tokens on the WebSocket: in the subprotocol or a first message; refusals before any event; expiry."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from buttress.clock import FakeClock

from ._live import WAIT, events, last, until
from .conftest import ADMIN_TOKEN, realtime_server, token


async def _closed_code(socket: object) -> tuple[int | None, list[dict[str, object]]]:
    """Read until the server closes; the close code and every message seen before."""
    seen: list[dict[str, object]] = []
    try:
        while True:
            frame = await asyncio.wait_for(socket.recv(), WAIT)  # type: ignore[attr-defined]
            seen.extend(json.loads(line) for line in frame.split("\n"))
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), seen


async def test_a_token_in_the_subprotocol_opens_protected_topics() -> None:
    clock = FakeClock()
    with realtime_server(clock=clock) as (realtime, server):
        protocols = ["buttress.v1", f"bearer.{token(clock)}"]
        async with connect(f"ws://{server}/ws?topics=secret.**", subprotocols=protocols) as socket:
            assert socket.subprotocol == "buttress.v1"
            assert last(await until(socket, "subscribed"), "subscribed")["topics"] == ["secret.**"]
            realtime.publish("secret.plans", {"x": 1})
            assert (await events(socket, 1))[0]["data"] == {"x": 1}


async def test_the_admin_token_in_a_first_message_opens_protected_topics() -> None:
    with realtime_server() as (realtime, server):
        async with connect(f"ws://{server}/ws") as socket:
            await socket.send(json.dumps({"type": "auth", "token": ADMIN_TOKEN}))
            await until(socket, "authenticated")
            await socket.send(json.dumps({"type": "subscribe", "topics": ["secret.**"]}))
            await until(socket, "subscribed")
            realtime.publish("secret.plans", {"x": 2})
            assert (await events(socket, 1))[0]["data"] == {"x": 2}


@pytest.mark.parametrize("credential", ["not-a-token", "a.b.c"], ids=["garbage", "jwt-shaped"])
async def test_a_bad_token_is_closed_with_1008_before_any_event(credential: str) -> None:
    with realtime_server() as (realtime, server):
        realtime.publish("secret.plans", {"x": 1})
        protocols = ["buttress.v1", f"bearer.{credential}"]
        async with connect(f"ws://{server}/ws?topics=secret.**", subprotocols=protocols) as socket:
            code, seen = await _closed_code(socket)
    assert code == 1008
    assert seen == []


async def test_an_expired_token_is_refused_at_connect() -> None:
    clock = FakeClock()
    expired = token(clock, lifetime=-1)
    with realtime_server(clock=clock) as (_realtime, server):
        async with connect(
            f"ws://{server}/ws?topics=secret.**", subprotocols=["buttress.v1", f"bearer.{expired}"]
        ) as socket:
            code, seen = await _closed_code(socket)
    assert code == 1008
    assert not [message for message in seen if message.get("type") == "event"]


async def test_anonymous_clients_never_receive_protected_topics_whatever_they_ask() -> None:
    with realtime_server(public=("news.*",)) as (realtime, server):
        async with connect(
            f"ws://{server}/ws?topics=**&topics=news.**&topics=secret.*&topics=news.*"
        ) as socket:
            seen = await until(socket, "subscribed")
            realtime.publish("secret.plans", {"x": 1})
            realtime.publish("news.deep.down", {"x": 2})
            realtime.publish("news.top", {"x": 3})
            got = await events(socket, 1)
    errors = [message for message in seen if message["type"] == "error"]
    assert errors[0]["code"] == "forbidden"
    assert sorted(errors[0]["topics"]) == ["**", "news.**", "secret.*"]  # type: ignore[arg-type]
    assert last(seen, "subscribed")["topics"] == ["news.*"]
    assert [event["data"] for event in got] == [{"x": 3}]


async def test_a_socket_is_closed_within_one_second_of_its_tokens_expiry() -> None:
    clock = FakeClock()
    with realtime_server(clock=clock) as (realtime, server):
        protocols = ["buttress.v1", f"bearer.{token(clock, lifetime=60)}"]
        async with connect(f"ws://{server}/ws?topics=secret.**", subprotocols=protocols) as socket:
            await until(socket, "subscribed")
            clock.advance(59)
            realtime.publish("secret.plans", {"x": 1})
            assert len(await events(socket, 1)) == 1
            clock.advance(1)  # now == exp
            started = time.monotonic()
            code, _seen = await _closed_code(socket)
            elapsed = time.monotonic() - started
    assert code == 1008
    assert elapsed < 1.0


async def test_connections_per_user_are_limited() -> None:
    clock = FakeClock()
    with realtime_server(clock=clock, max_connections_per_user=2) as (_realtime, server):
        protocols = ["buttress.v1", f"bearer.{token(clock)}"]
        async with (
            connect(f"ws://{server}/ws", subprotocols=protocols) as first,
            connect(f"ws://{server}/ws", subprotocols=protocols) as second,
        ):
            await until(first, "welcome")
            await until(second, "welcome")
            async with connect(f"ws://{server}/ws", subprotocols=protocols) as third:
                code, _ = await _closed_code(third)
            other = ["buttress.v1", f"bearer.{token(clock, subject='grace')}"]
            async with connect(f"ws://{server}/ws", subprotocols=other) as fourth:
                assert last(await until(fourth, "welcome"), "welcome")["type"] == "welcome"
    assert code == 1013


async def test_connections_per_process_are_limited() -> None:
    with realtime_server(max_connections=1) as (_realtime, server):
        async with connect(f"ws://{server}/ws") as first:
            await until(first, "welcome")
            async with connect(f"ws://{server}/ws") as second:
                code, _ = await _closed_code(second)
    assert code == 1013


async def test_first_message_auth_counts_against_the_users_limit_and_keeps_the_welcome() -> None:
    clock = FakeClock()
    with realtime_server(clock=clock, max_connections_per_user=1) as (_realtime, server):
        protocols = ["buttress.v1", f"bearer.{token(clock)}"]
        async with connect(f"ws://{server}/ws", subprotocols=protocols) as first:
            await until(first, "welcome")
            async with connect(f"ws://{server}/ws") as second:
                await second.send(json.dumps({"type": "auth", "token": token(clock)}))
                code, seen = await _closed_code(second)
    assert code == 1013
    assert seen[0]["type"] == "welcome"
