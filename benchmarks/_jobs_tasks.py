"""The jobs :mod:`benchmarks.bench_jobs` defers to buttress: the shared harness's job bodies, as async defs.

Imported by the benchmark and by the ``buttress worker`` it starts; the harness folder (``common.py``) is
on ``sys.path`` there (the harness puts it on the worker's ``PYTHONPATH``). ``BENCH_JOBS_LIB`` names the
run, so the PostgreSQL and SQLite runs count under their own Redis keys.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Final

from buttress.jobs import job

__all__ = ["QUEUE", "lat", "noop"]

QUEUE: Final = "bench"
LIB: Final = os.environ.get("BENCH_JOBS_LIB", "buttress")

if os.environ.get("BENCH_JOBS_HARNESS") and os.environ["BENCH_JOBS_HARNESS"] not in sys.path:
    sys.path.insert(0, os.environ["BENCH_JOBS_HARNESS"])
common = importlib.import_module("common")


@job(queue=QUEUE)
async def noop(i: int) -> None:
    """The throughput job: one Redis INCR (the 1st and the N-th store the time)."""
    common.job_mark(LIB)


@job(queue=QUEUE)
async def lat(i: int) -> None:
    """The latency probe: pushes the time at its first line."""
    common.job_lat(LIB)
