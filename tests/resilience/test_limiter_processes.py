"""Four processes share one Redis limiter and, together, get exactly its rate.

Each process (spawned, so nothing is inherited) hammers ``try_acquire`` and records, for every attempt,
the wall time just before and just after it. All processes run on this machine, so their ``time.time()``
is one clock; the decisions themselves use Redis ``TIME``.

- Upper bound, checked without trusting the timestamps more than they deserve: a decision happened
  somewhere between its before and after stamps, so the calls whose whole interval lies inside a window
  of one period certainly happened inside it; there can be at most ``limit + burst`` of them.
- Lower bound: while someone keeps asking, GCRA admits ``burst`` at once and then the rate, so the total
  is within 1 % of ``burst + elapsed * rate`` (and never above it). A pause in demand longer than
  ``burst / rate`` would lose tokens; four busy processes never pause that long, and the burst of 200
  leaves 400 ms of slack for a busy machine.
"""

from __future__ import annotations

import bisect
import multiprocessing
import time
import uuid
from typing import Any

from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.rate import Rate
from buttress.resilience._limiter import RateLimiter
from buttress.resilience._limiter_redis import ACQUIRE
from buttress.resilience._redis_state import RedisState

RATE = Rate(500, 1.0)
BURST = 200
PROCESSES = 4
ATTEMPTS = 2000


def hammer(url: str, namespace: str, start: Any, results: Any) -> None:
    """One process: connect, wait for the others, then ``ATTEMPTS`` timed try_acquire calls."""
    # a generous socket timeout: on a busy machine a stalled reply must not switch this process to its
    # local fallback (the outage policy), which would enforce the limit per process instead of in total
    state = RedisState(
        url, prefix=namespace, socket_timeout=10.0, metrics=MetricsRegistry(), events=EventBus()
    )
    limiter = RateLimiter(
        RATE, burst=BURST, name="exact", store=state, metrics=MetricsRegistry(), events=EventBus()
    )
    state.client().script_load(ACQUIRE.source)  # connected and loaded before the clock starts
    now = time.time
    stamps: list[tuple[float, float, bool]] = []
    start.wait(60)
    for _ in range(ATTEMPTS):
        before = now()
        admitted = limiter.try_acquire()
        stamps.append((before, now(), admitted))
    results.put((stamps, state.policy_calls.value))
    state.close()


def most_certainly_in_one_period(admitted: list[tuple[float, float]]) -> int:
    """The most calls whose [before, after] interval lies wholly inside one window of one period."""
    admitted = sorted(admitted)
    befores = [before for before, _ in admitted]
    most = 0
    for i, (start, _) in enumerate(admitted):
        end = start + RATE.period
        last = bisect.bisect_right(befores, end)
        most = max(most, sum(1 for _, after in admitted[i:last] if after <= end))
    return most


def test_four_processes_share_the_exact_limit(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    namespace = f"test-limiter-processes-{uuid.uuid4().hex}"
    workers = [
        context.Process(target=hammer, args=(redis_url, namespace, start, results), daemon=True)
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        replies = [results.get(timeout=100) for _ in workers]
    finally:
        for worker in workers:
            worker.join(10)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    assert [policy_calls for _, policy_calls in replies] == [0] * PROCESSES, "Redis was unreachable"
    stamps = [stamp for process_stamps, _ in replies for stamp in process_stamps]
    assert len(stamps) == PROCESSES * ATTEMPTS

    admitted = [(before, after) for before, after, ok in stamps if ok]
    # the first decision happened between the earliest before-stamp and the earliest after-stamp, the last
    # between the latest before and the latest after: that brackets the time the limiter was asked
    befores, afters = [before for before, _, _ in stamps], [after for _, after, _ in stamps]
    shortest, longest = max(befores) - min(afters), max(afters) - min(befores)
    rate = RATE.limit / RATE.period
    low, high = BURST + shortest * rate, BURST + longest * rate
    report = (
        f"{len(admitted)} admitted of {len(stamps)} in {shortest:.3f}-{longest:.3f} s; "
        f"ideal {low:.1f}-{high:.1f}"
    )
    assert len(admitted) < len(stamps) / 2, (
        f"demand must exceed the rate for this test to mean anything: {report}"
    )
    assert len(admitted) <= high + 1, report  # never more than the rate allows
    assert len(admitted) >= 0.99 * low, report  # and, under steady demand, within 1 % of all of it
    most = most_certainly_in_one_period(admitted)
    assert most <= RATE.limit + BURST, f"{most} calls in one period: {report}"
    # and the bound is tight: the busiest period holds (nearly) limit + burst, or every call of a short run
    assert most >= 0.98 * min(len(admitted), RATE.limit + BURST), f"{most} calls in one period: {report}"
