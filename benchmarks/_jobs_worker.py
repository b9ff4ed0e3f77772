"""The worker process :mod:`benchmarks.bench_jobs` starts: one buttress worker on the bench queue.

``python -m benchmarks._jobs_worker CONCURRENCY``. Two knobs say where a worker's time goes:

- ``BENCH_JOBS_PROFILE=PATH`` runs it under cProfile and writes the stats to PATH when the worker stops
  (SIGTERM stops it gracefully); the clock is the process's CPU time, ``BENCH_JOBS_PROFILE_CLOCK=wall``
  for wall time. cProfile slows the worker about 2x, so read its proportions, not its times.
- ``BENCH_JOBS_COUNTERS=PATH`` wraps the store's transactions, the job call and the job body in
  ``time.perf_counter``/``time.thread_time`` counters (a few µs each) and writes them as JSON to PATH
  when the worker stops: transactions by plan (count, wall and CPU seconds, jobs leased), job calls and
  job bodies (count, wall seconds).
"""

from __future__ import annotations

import cProfile
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks import _jobs_tasks
from buttress.jobs import Worker, get_jobs


def _counted(worker: Worker) -> dict[str, dict[str, float]]:
    """Wrap ``worker``'s store transactions and job calls in counters; the counters (filled as it runs)."""
    counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    store_arun = worker.store.arun

    async def arun(make: Callable[[], Any], *, write: bool = True) -> Any:
        name = "?"

        def named() -> Any:
            nonlocal name
            plan = make()
            name = getattr(plan, "__name__", "?")
            return plan

        wall, cpu = time.perf_counter(), time.thread_time()
        result = await store_arun(named, write=write)
        entry = counters[f"tx {name}"]
        entry["count"] += 1
        entry["wall_s"] += time.perf_counter() - wall
        entry["cpu_s"] += time.thread_time() - cpu  # includes whatever else the loop ran meanwhile
        if name == "fetch_plan":
            entry["leased"] += len(result)
        return result

    worker.store.arun = arun  # type: ignore[method-assign]
    call = worker._call

    async def timed_call(run: Any) -> Any:
        wall = time.perf_counter()
        try:
            return await call(run)
        finally:
            entry = counters["job call (scope, context, body)"]
            entry["count"] += 1
            entry["wall_s"] += time.perf_counter() - wall

    worker._call = timed_call  # type: ignore[method-assign]
    for task in (_jobs_tasks.noop, _jobs_tasks.lat):
        task.fn = _timed_body(task.fn, counters["job body (Redis INCR)"])  # type: ignore[assignment]
    return counters


def _timed_body(fn: Callable[..., Awaitable[Any]], entry: dict[str, float]) -> Callable[..., Awaitable[Any]]:
    async def body(*args: Any, **kwargs: Any) -> Any:
        wall = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            entry["count"] += 1
            entry["wall_s"] += time.perf_counter() - wall

    return body


def main(argv: list[str]) -> None:
    concurrency = int(argv[0]) if argv else 10
    worker = get_jobs().worker(queues=[_jobs_tasks.QUEUE], concurrency=concurrency)
    counters_path = os.environ.get("BENCH_JOBS_COUNTERS")
    counters = _counted(worker) if counters_path else None
    profile_path = os.environ.get("BENCH_JOBS_PROFILE")
    profiler = None
    if profile_path:
        cpu = os.environ.get("BENCH_JOBS_PROFILE_CLOCK", "cpu") == "cpu"
        profiler = cProfile.Profile(time.process_time) if cpu else cProfile.Profile()
        profiler.enable()
    started = time.process_time()
    try:
        worker.run_sync()
    finally:
        if profiler is not None and profile_path:
            profiler.disable()
            profiler.dump_stats(profile_path)
        if counters is not None and counters_path:
            out = {name: dict(entry) for name, entry in counters.items()}
            out["process"] = {"cpu_s": time.process_time() - started}
            with open(counters_path, "w") as file:
                json.dump(out, file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
