"""The job: one episode through transcription, clip cutting and an optional thumbnail, then the database.

One ``episodes`` queue, bounded (past ``QUEUE_SIZE`` waiting jobs an upload gets ``QueueFull``, a 503) and
limited to ``CONCURRENCY`` running jobs across every worker. The services are called through the process's
``AsyncHttpClient``, whose per-host policies come from the settings (:mod:`examples.podpromo.hosts`). The
thumbnail is optional: its failure (the host is down, then its breaker is open) is recorded, not raised.
The results are written with bulk upserts keyed by the episode, so a second run of the body (after a
worker died mid-job) rewrites the same rows instead of adding more.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Final

from sqlalchemy import update

from buttress.cache import Cache
from buttress.container import get_container
from buttress.db import Database
from buttress.errors import ButtressError
from buttress.files import get_files
from buttress.http import get_async_http_client
from buttress.jobs import JobContext, define_queue, job
from examples.podpromo.hosts import Hosts
from examples.podpromo.tables import clips, results, runs

__all__ = ["CLIPS_PER_EPISODE", "CONCURRENCY", "QUEUE", "QUEUE_SIZE", "process_episode"]

QUEUE: Final = "episodes"
QUEUE_SIZE: Final = int(os.environ.get("PODPROMO_QUEUE_SIZE", "200"))
CONCURRENCY: Final = int(os.environ.get("PODPROMO_CONCURRENCY", "4"))
CLIPS_PER_EPISODE: Final = 3

define_queue(QUEUE, max_size=QUEUE_SIZE, concurrency=CONCURRENCY)


@job(queue=QUEUE, retry=3, timeout=120)
async def process_episode(ctx: JobContext, file_id: str, show: str) -> dict[str, Any]:
    """Transcribe, cut clips, try a thumbnail; store the episode's result and clips in two bulk writes."""
    container = get_container()
    db, cache = container.resolve(Database), container.resolve(Cache)
    run = await _record_start(db, ctx, file_id)
    hosts, http = Hosts.from_env(), get_async_http_client()
    stored = await get_files().astat(file_id)

    async def show_profile() -> dict[str, Any]:  # one call per show per worker a minute, not per episode
        return dict((await http.get(f"{hosts.transcribe}/shows/{show}")).json())

    await cache.namespaced("shows").aget_or_set(show, show_profile, ttl=60)
    transcripts = cache.namespaced("transcripts")  # the same bytes uploaded twice are transcribed once
    transcript = await transcripts.aget(stored.sha256)
    cached = transcript is not None
    if transcript is None:
        answer = (
            await http.post(  # a POST is retried only with an idempotency key: this one is safe to repeat
                f"{hosts.transcribe}/transcribe",
                json={"sha256": stored.sha256, "size": stored.size},
                idempotency_key=f"transcribe:{stored.sha256}",
            )
        )
        transcript = {"words": _words(stored.sha256, stored.size), "echo": answer.json().get("path", "")}
        await transcripts.aset(stored.sha256, transcript, ttl=3600)
    ctx.progress(0.4, "transcribed" + (" (cache)" if cached else ""))

    rows = []
    for n in range(CLIPS_PER_EPISODE):
        await http.get(f"{hosts.clips}/cut/{file_id}/{n}")
        start = (int(stored.sha256[n * 4 : n * 4 + 4], 16) % 600) / 10
        rows.append(
            {"file_id": file_id, "n": n, "start_s": start, "end_s": start + 30, "title": f"{show} #{n}"}
        )
        ctx.progress(0.4 + 0.15 * (n + 1), f"clip {n + 1}/{CLIPS_PER_EPISODE}")

    thumbnail, thumbnail_error = None, None
    try:
        await http.get(f"{hosts.thumbnails}/render/{file_id}")
        thumbnail = f"thumbs/{file_id}.jpg"
    except ButtressError as error:  # optional step: a dead host or an open breaker is recorded, not fatal
        thumbnail_error = error.error_code

    await db.abulk_upsert(clips, rows, conflict=["file_id", "n"])
    result = {
        "file_id": file_id, "job_id": ctx.job_id, "show": show, "words": transcript["words"],
        "clips": len(rows), "transcript_cached": cached, "thumbnail": thumbnail,
        "thumbnail_error": thumbnail_error, "finished_at": time.time(),
    }  # fmt: skip
    await db.abulk_upsert(results, [result], conflict=["file_id"])
    await _record_end(db, run)
    return {"clips": len(rows), "thumbnail": thumbnail is not None, "cached": cached}


def _words(sha256: str, size: int) -> int:
    """A stand-in transcript length, the same for the same bytes."""
    return size // 16 + int(hashlib.sha256(sha256.encode()).hexdigest()[:2], 16)


async def _record_start(db: Database, ctx: JobContext, file_id: str) -> int:
    async with db.asession() as session:
        row = {"file_id": file_id, "job_id": ctx.job_id, "attempt": ctx.attempt, "pid": os.getpid()}
        inserted = await session.execute(
            runs.insert().values(**row, started_at=time.time()).returning(runs.c.id)
        )
        return int(inserted.scalar_one())


async def _record_end(db: Database, run: int) -> None:
    async with db.asession() as session:
        await session.execute(update(runs).where(runs.c.id == run).values(finished_at=time.time()))
