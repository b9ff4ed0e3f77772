"""Which due jobs a worker may start without breaking a concurrency limit (pure; the fetch plan asks it).

Limits are per job type (``@job(concurrency=2)``) and per queue (``define_queue(name, concurrency=3)``),
counted over every running job in the database, so they hold across all workers on all machines. The
fetch runs this while holding the lock every limited fetch takes, so two workers never both take the
last free place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

__all__ = ["choose"]


def choose(
    candidates: Sequence[tuple[int, str, str]],
    *,
    running: Sequence[tuple[str, str, int]],
    task_limits: Mapping[str, int],
    queue_limits: Mapping[str, int],
    slots: int,
) -> list[int]:
    """The ids among ``candidates`` (id, task, queue; best first) to start, at most ``slots`` of them.

    ``running`` holds (task, queue, count) of the jobs running now. A candidate is skipped, not waited
    for, when its task or its queue is at its limit: a lower-priority job of another type may go first.
    """
    by_task: Counter[str] = Counter()
    by_queue: Counter[str] = Counter()
    for task, queue, count in running:
        by_task[task] += count
        by_queue[queue] += count
    chosen: list[int] = []
    for job_id, task, queue in candidates:
        if len(chosen) >= slots:
            break
        if task in task_limits and by_task[task] >= task_limits[task]:
            continue
        if queue in queue_limits and by_queue[queue] >= queue_limits[queue]:
            continue
        chosen.append(job_id)
        by_task[task] += 1
        by_queue[queue] += 1
    return chosen
