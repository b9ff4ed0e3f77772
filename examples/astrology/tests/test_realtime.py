"""Batch progress and per-reading channels over a real WebSocket (uvicorn on a spare loopback port), with
the JWT the batch's creator receives; what a missing, wrong or foreign token gets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from buttress.jobs import get_jobs
from buttress.realtime import MemoryTopicLog, RedisTopicLog, get_realtime
from examples.astrology.app import create_app
from examples.astrology.batch import QUEUE

from .conftest import ADMIN_TOKEN, JWT_KEY, serving

WAIT = 10.0
PEOPLE = [{"name": f"n{n}", "birth_date": f"1985-{1 + n % 12:02d}-{1 + n % 27:02d}"} for n in range(25)]


async def _messages(socket: ClientConnection) -> list[dict[str, Any]]:
    frame = await asyncio.wait_for(socket.recv(), WAIT)
    assert isinstance(frame, str)
    return [json.loads(line) for line in frame.split("\n")]


async def _until(
    socket: ClientConnection, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Messages (answering pings) until ``done(seen)`` holds."""
    seen: list[dict[str, Any]] = []
    while not done(seen):
        for message in await _messages(socket):
            if message["type"] == "ping":
                await socket.send('{"type": "pong"}')
            seen.append(message)
    return seen


def _of(seen: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [message for message in seen if message["type"] == kind]


async def _close_code(socket: ClientConnection) -> int | None:
    try:
        while True:
            await asyncio.wait_for(socket.recv(), WAIT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def _ws(base: str, *topics: str) -> str:
    return base.replace("http://", "ws://") + "/realtime/ws?" + "&".join(f"topics={t}" for t in topics)


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_batch_streams_its_progress_and_each_reading_to_its_token_holder(
    configure: Callable[..., None], request: pytest.FixtureRequest, backend: str
) -> None:
    # With Redis, the cache and the realtime log (a Redis Stream) move there; the app does not change.
    redis_url = request.getfixturevalue("astro_redis_url") if backend == "redis" else None
    configure(**({"BUTTRESS_REDIS_URL": redis_url} if redis_url else {}))
    with serving(create_app()) as http:
        batch = http.post("/batches", json={"people": PEOPLE}).json()
        job, first = batch["job_id"], batch["readings"][0]
        claims = jwt.decode(batch["token"], JWT_KEY, algorithms=["HS256"], audience="astrology:readings")
        assert (claims["jobs"], claims["readings"]) == ([job], batch["readings"])
        url = _ws(str(http.base_url), f"jobs.{job}.progress", f"readings.{first}.*")
        protocols = ["buttress.v1", f"bearer.{batch['token']}"]
        async with connect(url, subprotocols=protocols) as socket:
            assert socket.subprotocol == "buttress.v1"
            subscribed = await _until(socket, lambda seen: bool(_of(seen, "subscribed")))
            assert not _of(subscribed, "error")
            with get_jobs().worker(queues=[QUEUE]).running():  # `buttress worker` in production
                seen = await _until(
                    socket,
                    lambda seen: (
                        any(e["data"].get("progress") == 1.0 for e in _of(seen, "event"))
                        and any(e["topic"].startswith("readings.") for e in _of(seen, "event"))
                    ),
                )
        progress = [e["data"]["progress"] for e in _of(seen, "event") if e["topic"].endswith(".progress")]
        assert progress == [0.4, 0.8, 1.0]  # one step per chunk of ten readings
        [ready] = [e for e in _of(seen, "event") if e["topic"].startswith("readings.")]
        assert ready["topic"] == f"readings.{first}.ready"
        assert ready["data"]["text"].startswith("n0, a ")
        assert http.get(f"/readings/{first}").json()["text"] == ready["data"]["text"]
        assert http.get("/ops/db").json()["n_plus_one"] == []  # one UPDATE per chunk, not per reading
        log = get_realtime().log
        assert isinstance(log, RedisTopicLog if redis_url else MemoryTopicLog)


async def test_channels_refuse_absent_foreign_and_bad_tokens(configure: Callable[..., None]) -> None:
    configure()
    with serving(create_app()) as http:
        mine = http.post("/batches", json={"people": PEOPLE[:1]}).json()
        theirs = http.post("/batches", json={"people": PEOPLE[1:2]}).json()
        base = str(http.base_url)
        foreign = f"readings.{theirs['readings'][0]}.*"

        async with connect(_ws(base, foreign)) as socket:  # no token
            seen = await _until(socket, lambda seen: bool(_of(seen, "subscribed")))
        [error] = _of(seen, "error")
        assert (error["code"], error["topics"]) == ("forbidden", [foreign])
        assert "without a token" in error["message"]

        protocols = ["buttress.v1", f"bearer.{mine['token']}"]
        async with connect(
            _ws(base, foreign, f"readings.{mine['readings'][0]}.*"), subprotocols=protocols
        ) as socket:
            seen = await _until(socket, lambda seen: bool(_of(seen, "subscribed")))
        assert _of(seen, "error")[0]["topics"] == [foreign]  # someone else's reading
        assert _of(seen, "subscribed")[-1]["topics"] == [f"readings.{mine['readings'][0]}.*"]

        forged = jwt.encode(
            {
                "sub": "x",
                "aud": "astrology:readings",
                "exp": int(time.time()) + 60,
                "readings": theirs["readings"],
            },
            "another-key-0123456789abcdef-0123456789abcdef",
            algorithm="HS256",
        )
        for bad in ("not-a-token", forged):
            async with connect(_ws(base, foreign), subprotocols=["buttress.v1", f"bearer.{bad}"]) as socket:
                assert await _close_code(socket) == 1008

        # The admin token follows anything; a reading token opens no admin endpoint.
        async with connect(
            _ws(base, foreign), subprotocols=["buttress.v1", f"bearer.{ADMIN_TOKEN}"]
        ) as socket:
            seen = await _until(socket, lambda seen: bool(_of(seen, "subscribed")))
        assert not _of(seen, "error")
        refused = http.post("/ops/profiler/start", headers={"Authorization": f"Bearer {mine['token']}"})
        assert refused.status_code == 401
