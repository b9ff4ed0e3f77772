"""The worker process :mod:`benchmarks.bench_jobs` starts: one buttress worker on the bench queue.

``python -m benchmarks._jobs_worker CONCURRENCY``. ``BENCH_JOBS_PROFILE=PATH`` runs it under cProfile and
writes the stats to PATH when the worker stops (SIGTERM stops it gracefully).
"""

from __future__ import annotations

import cProfile
import os
import sys

from benchmarks import _jobs_tasks


def main(argv: list[str]) -> None:
    concurrency = int(argv[0]) if argv else 10
    worker = _jobs_tasks.ready_jobs().worker(queues=[_jobs_tasks.QUEUE], concurrency=concurrency)
    path = os.environ.get("BENCH_JOBS_PROFILE")
    if not path:
        worker.run_sync()
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        worker.run_sync()
    finally:
        profiler.disable()
        profiler.dump_stats(path)


if __name__ == "__main__":
    main(sys.argv[1:])
