"""The soak's jobs, imported by every node (to defer them) and every worker (to run them).

Each run of a job body appends one line to ``$SOAK_DIR/runs.jsonl`` (one ``write`` of a short line on an
``O_APPEND`` file: lines from many processes never interleave), so the checks can tell a job that ran twice
(its worker was killed mid-run: at-least-once execution) from one that *completed* twice (never allowed).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Final

from benchmarks.soak_plan import TICK_EVERY, TICK_SCHEDULE
from buttress.jobs import current_job, job, schedule

__all__ = ["QUEUE", "tick", "work"]

QUEUE: Final = "soak"


def _record(kind: str) -> None:
    ctx = current_job()
    line = {"k": kind, "job": ctx.job_id if ctx else None, "t": time.time(), "pid": os.getpid()}
    path = Path(os.environ.get("SOAK_DIR", ".")) / "runs.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


@job(queue=QUEUE, retry=5)
async def work(n: int) -> int:
    """The load: up to 300 ms of "work", long enough for a SIGKILL to catch some jobs mid-run."""
    _record("work")
    await asyncio.sleep(random.uniform(0.0, 0.3))
    return n


@schedule(every=TICK_EVERY, name=TICK_SCHEDULE, catch_up="all", overlap="allow")
@job(queue=QUEUE, retry=5)
def tick() -> None:
    """Fired by whichever worker's scheduler gets the tick first: exactly one job per tick."""
    _record("tick")
