"""A job's own channel: its progress and status, from a real worker, over the WebSocket."""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect

from buttress.jobs import JobContext, get_jobs, job
from buttress.realtime import get_realtime, realtime_router

from ._live import WAIT, events, serving, until

pytestmark = pytest.mark.usefixtures("isolated_settings")  # SQLite in an empty directory, fresh container

go_on = threading.Event()


@job(queue="realtime-test")
def render(ctx: JobContext, parts: int) -> int:
    for part in range(parts):
        ctx.progress(part / parts, f"part {part}")
        assert go_on.wait(WAIT)
    return parts


async def test_a_jobs_progress_and_status_reach_its_channel() -> None:
    go_on.clear()
    app = FastAPI()
    app.include_router(realtime_router(public=["jobs.**"]))
    get_realtime()  # recording starts before the job runs
    handle = render.defer(parts=3)
    with serving(app) as server:
        async with connect(f"ws://{server}/ws?topics=jobs.{handle.id}.*") as socket:
            await until(socket, "subscribed")
            with get_jobs().worker(concurrency=1, queues=["realtime-test"]).running():
                first = await events(socket, 2)  # status running, then the first progress
                go_on.set()
                rest = await events(socket, 3)  # two more steps, then succeeded
                assert handle.result(timeout=WAIT) == 3
        get_realtime().close()
    seen = [
        (event["topic"].rsplit(".", 1)[1], event["data"].get("status") or event["data"].get("message"))
        for event in first + rest
    ]
    assert seen == [
        ("status", "running"),
        ("progress", "part 0"),
        ("progress", "part 1"),
        ("progress", "part 2"),
        ("status", "succeeded"),
    ]
