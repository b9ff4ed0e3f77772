"""The batch job: compute many readings, report progress, and announce each reading on its channel.

A durable ``buttress.jobs`` job (SQLite by default, PostgreSQL with ``BUTTRESS_DATABASE_URL``): retried,
leased, cancellable, its progress stored and published as ``jobs.<id>.progress``, which the realtime router
carries to WebSocket clients.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from buttress.jobs import JobContext, define_queue, job
from buttress.realtime import get_realtime

from .store import database, get_many, save_texts
from .zodiac import reading_text

__all__ = ["QUEUE", "STEPS", "compute_batch"]

QUEUE = "readings"
STEPS = 8  # at most this many chunks, each one UPDATE and one progress report: never an N+1 pattern
MIN_CHUNK = 10
define_queue(QUEUE, max_size=1000, concurrency=4)


@job(queue=QUEUE, retry=3, timeout=600)
def compute_batch(ctx: JobContext, reading_ids: list[int]) -> dict[str, Any]:
    """Write the text of every reading in ``reading_ids``; publish ``readings.<id>.ready`` for each."""
    db, realtime = database(), get_realtime()
    rows = get_many(db, reading_ids)
    size = max(MIN_CHUNK, math.ceil(len(rows) / STEPS))
    for start in range(0, len(rows), size):
        ctx.raise_if_cancelled()
        chunk = [{**row, "text": reading_text(row["name"], date.fromisoformat(row["birth_date"]))}
                 for row in rows[start : start + size]]  # fmt: skip
        save_texts(db, {row["id"]: row["text"] for row in chunk})
        for row in chunk:
            realtime.publish(f"readings.{row['id']}.ready", row)
        done = start + len(chunk)
        ctx.progress(done / len(rows), f"{done}/{len(rows)} readings")
    return {"readings": len(rows)}
