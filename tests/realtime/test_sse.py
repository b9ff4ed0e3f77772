"""The SSE endpoint: the same topics, ids and resume, with Last-Event-ID; tokens in Authorization."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from buttress.clock import FakeClock

from ._live import WAIT
from .conftest import ADMIN_TOKEN, realtime_server, token


async def _sse(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    """The next ``count`` events of an SSE stream, each with its ``id`` line (None when absent)."""
    found: list[dict[str, Any]] = []
    event_id = None
    async with asyncio.timeout(WAIT):
        async for line in lines:
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                message = json.loads(line[6:])
                if message["type"] == "event":
                    found.append({"sse_id": event_id, **message})
                    if len(found) == count:
                        return found
                event_id = None
    raise AssertionError(f"the stream ended after {len(found)} of {count} events")


async def test_events_carry_ids_and_last_event_id_resumes_without_gap_or_duplicate() -> None:
    with realtime_server() as (realtime, server):
        async with httpx.AsyncClient(base_url=f"http://{server}", timeout=WAIT) as client:
            async with client.stream("GET", "/sse", params={"topics": "news.*"}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = response.aiter_lines()
                assert await anext(lines) == "retry: 2000"
                realtime.publish("news.a", {"n": 1})
                first = await _sse(lines, 1)
            for n in range(2, 5):
                realtime.publish("news.a", {"n": n})
            assert realtime.flush()
            headers = {"Last-Event-ID": first[0]["sse_id"]}
            async with client.stream("GET", "/sse", params={"topics": "news.*"}, headers=headers) as response:
                replayed = await _sse(response.aiter_lines(), 3)
    assert first[0]["sse_id"] == first[0]["id"]
    assert [event["data"]["n"] for event in replayed] == [2, 3, 4]
    assert all(event["sse_id"] == event["id"] for event in replayed)


async def test_protected_topics_need_a_bearer_token() -> None:
    clock = FakeClock()
    with realtime_server(clock=clock) as (realtime, server):
        async with httpx.AsyncClient(base_url=f"http://{server}", timeout=WAIT) as client:
            anonymous = await client.get("/sse", params={"topics": "secret.*"})
            wrong = await client.get(
                "/sse", params={"topics": "secret.*"}, headers={"Authorization": "Bearer nope"}
            )
            invalid = await client.get("/sse", params={"topics": "secret.*x"})
            headers = {"Authorization": f"Bearer {token(clock)}"}
            async with client.stream(
                "GET", "/sse", params={"topics": "secret.*"}, headers=headers
            ) as response:
                lines = response.aiter_lines()
                assert await anext(lines) == "retry: 2000"
                realtime.publish("secret.plans", {"x": 1})
                got = await _sse(lines, 1)
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with client.stream("GET", "/sse", params={"topics": "secret.*"}, headers=admin) as response:
                assert response.status_code == 200
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert wrong.status_code == 401
    assert "WWW-Authenticate" in wrong.headers
    assert invalid.status_code == 422
    assert got[0]["data"] == {"x": 1}


async def test_an_sse_stream_ends_when_its_token_expires() -> None:
    clock = FakeClock()
    with realtime_server(clock=clock) as (_realtime, server):
        async with httpx.AsyncClient(base_url=f"http://{server}", timeout=WAIT) as client:
            headers = {"Authorization": f"Bearer {token(clock, lifetime=30)}"}
            async with client.stream(
                "GET", "/sse", params={"topics": "secret.*"}, headers=headers
            ) as response:
                lines = response.aiter_lines()
                assert await anext(lines) == "retry: 2000"
                clock.advance(31)
                async with asyncio.timeout(WAIT):
                    rest = [line async for line in lines]  # ends: the server closed the stream
    assert not any(line.startswith("id: ") for line in rest)
