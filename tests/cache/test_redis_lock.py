"""The Redis compute lock across processes, through Cache.get_or_set: 4 processes missing one key at once run
the function once; a lock holder killed mid-compute frees the key after its lease; and get_or_set from 8
threads through a Redis killed and restarted never raises.

Processes are spawned (fresh interpreters) and count their factory calls in Redis itself.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import redis

from buttress.cache import Cache
from buttress.cache._redis import RedisBackend
from buttress.clock import FakeClock
from buttress.observe.metrics import MetricsRegistry
from tests._ports import free_port
from tests._redis_server import RedisServer
from tests.cache.test_redis_backend import prefix, raw

__all__ = ["prefix", "raw"]  # fixtures: a unique key prefix, and a client that removes its keys afterwards

PROCESSES = 4
TIMEOUT = (
    60.0  # generous bound on a queue or barrier wait (spawned interpreters import slowly); never a sleep
)
SLOW = 0.5  # how long the factory works: long enough that every other process misses while it runs


def _cache(url: str, prefix: str, **options: Any) -> Cache:
    backend = RedisBackend(url, prefix=prefix, metrics=MetricsRegistry())
    return Cache(backend, namespace="locks", metrics=MetricsRegistry(), **options)


def stampede_worker(index: int, url: str, prefix: str, barrier: Any, results: Any) -> None:
    """Miss the shared key together with the other processes; report what get_or_set returned."""
    cache = _cache(url, prefix)
    counter = redis.Redis.from_url(url)

    def slow_factory() -> dict[str, int]:
        counter.incr(f"{prefix}:factory-calls")
        time.sleep(SLOW)  # the expensive computation the lock exists for
        return {"computed_by": index}

    try:
        barrier.wait(TIMEOUT)
        results.put((index, cache.get_or_set("hot", slow_factory, ttl=60)))
    finally:
        counter.close()
        cache.close()


def holder_worker(url: str, prefix: str, results: Any) -> None:
    """Take the key's lock (lease 0.5 s), say so, and never finish: the parent kills this process."""
    cache = _cache(url, prefix, lock_lease=0.5)
    counter = redis.Redis.from_url(url)

    def never_finishes() -> str:
        counter.incr(f"{prefix}:factory-calls")
        results.put("computing")
        threading.Event().wait()  # until SIGKILL
        return "unreachable"

    cache.get_or_set("hot", never_finishes, ttl=60)


def test_four_processes_missing_one_key_run_the_function_once(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=stampede_worker, args=(i, redis_url, prefix, barrier, results), daemon=True)
        for i in range(PROCESSES)
    ]
    try:
        for process in processes:
            process.start()
        got = dict(results.get(timeout=TIMEOUT) for _ in range(PROCESSES))
        for process in processes:
            process.join(TIMEOUT)
            assert process.exitcode == 0

        assert raw.get(f"{prefix}:factory-calls") == b"1"
        assert len(got) == PROCESSES
        assert len({value["computed_by"] for value in got.values()}) == 1  # all got the one computed value
        assert not raw.exists(f"{prefix}:~lock:locks:hot")  # released
    finally:
        for process in processes:
            process.kill()


def test_a_killed_lock_holder_frees_the_key_after_its_lease(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    holder = context.Process(target=holder_worker, args=(redis_url, prefix, results), daemon=True)
    cache = _cache(redis_url, prefix, lock_lease=0.5)
    try:
        holder.start()
        assert results.get(timeout=TIMEOUT) == "computing"
        holder.kill()  # SIGKILL mid-compute: no finally, no release
        holder.join(TIMEOUT)
        lock_key = f"{prefix}:~lock:locks:hot"
        lease_left = raw.pttl(lock_key) / 1000
        assert 0 < lease_left <= 0.5  # the dead holder's lock is still there...

        def compute_here() -> str:
            raw.incr(f"{prefix}:factory-calls")
            return "computed here"

        started = time.monotonic()
        value = cache.get_or_set("hot", compute_here, ttl=60)
        waited = time.monotonic() - started

        assert value == "computed here"  # ...until its lease ran out; then this process computed
        assert waited >= lease_left - 0.05
        assert waited < 5  # well before lock_wait (10 s): the lease, not the wait limit, freed the key
        assert raw.get(f"{prefix}:factory-calls") == b"2"
        assert cache.get("hot") == "computed here"
    finally:
        holder.kill()
        cache.close()


def test_get_or_set_from_8_threads_through_a_killed_and_restarted_redis(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, free_port())
    server.start()
    clock = FakeClock()  # the backend's reconnect backoff only; the cache keeps real time
    backend = RedisBackend(server.url, prefix="p", clock=clock, socket_timeout=2.0, metrics=MetricsRegistry())
    cache = Cache(backend, namespace="outage", ttl=60, metrics=MetricsRegistry())
    errors: list[BaseException] = []
    wrong: list[tuple[str, Any]] = []
    calls = [0] * 8
    stop = threading.Event()

    def worker(index: int) -> None:
        n = 0
        while not stop.is_set():
            key = f"k{n % 25}"
            try:
                value = cache.get_or_set(key, lambda: f"value of {key}")  # noqa: B023 - called at once
            except BaseException as exc:
                errors.append(exc)
                return
            if value != f"value of {key}":
                wrong.append((key, value))
            n += 1
            calls[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()

    def wait_for_calls(more: int) -> None:
        target = sum(calls) + more
        deadline = time.monotonic() + TIMEOUT
        while sum(calls) < target and not errors:
            assert time.monotonic() < deadline, "the workers stalled"
            time.sleep(0.005)  # polling real threads

    def available() -> bool:
        return backend.available

    try:
        wait_for_calls(500)
        server.stop()
        wait_for_calls(2000)  # served from memory, computed locally
        assert not available()
        assert cache.check().status == "warn"
        server.start()
        deadline = time.monotonic() + TIMEOUT
        while not available():
            assert time.monotonic() < deadline, "never recovered"
            clock.advance(0.5)
            time.sleep(0.005)
        wait_for_calls(2000)
        assert available()
    finally:
        stop.set()
        for thread in threads:
            thread.join(TIMEOUT)
        cache.close()
        server.stop()
    assert errors == []
    assert wrong == []
    assert backend.degraded_calls.value > 0
