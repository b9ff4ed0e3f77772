"""One soak node: the ops server on its own port and a mixed load through buttress's public API.

``python -m benchmarks.soak_node INDEX PORT`` (environment from :mod:`benchmarks.soak`). Every part is
what a user's service does: a shared rate limiter and circuit breaker (``BUTTRESS_RESILIENCE__STORE=
redis``), the tiered cache (``BUTTRESS_CACHE__BACKEND=tiered``) and durable jobs on PostgreSQL. Each
outcome a caller sees goes to ``$SOAK_DIR/node-INDEX.jsonl``, one JSON object a line, for the checks. The
node stops when ``$SOAK_DIR/stop`` exists.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from benchmarks.soak_jobs import work
from benchmarks.soak_plan import (
    BREAKER_FAILURES,
    BREAKER_NAME,
    BREAKER_OPEN_S,
    CACHE_KEYS,
    LIMIT_BURST,
    LIMIT_RATE,
)
from buttress.cache import get_cache
from buttress.errors import CircuitOpen
from buttress.resilience import CircuitBreaker, RateLimiter, get_resilience_store
from buttress.server import create_app


class Log:
    """JSON lines, buffered in memory and written by one thread every 0.2 s and at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"k": kind, **fields})
        with self._lock:
            self._lines.append(line)

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            with self.path.open("a") as file:
                file.write("\n".join(lines) + "\n")


class Node:
    """The load of one node: each loop runs in its own thread until ``stop`` is set."""

    def __init__(self, index: int, directory: Path) -> None:
        self.index = index
        self.directory = directory
        self.log = Log(directory / f"node-{index}.jsonl")
        self.stop = threading.Event()
        state = get_resilience_store()
        if state is None:
            raise SystemExit("the soak needs BUTTRESS_RESILIENCE__STORE=redis")
        self.limiter = RateLimiter(
            f"{LIMIT_RATE:g}/s", burst=LIMIT_BURST, max_wait=0, name="soak.limited", store=state
        )
        self.breaker = CircuitBreaker(
            BREAKER_NAME, consecutive_failures=BREAKER_FAILURES, open_duration=BREAKER_OPEN_S, store=state
        )
        self.cache = get_cache()
        self.fail_flag = directory / f"fail-{index}"

    def loops(self) -> list[Callable[[], None]]:
        loops = [self.limited, self.guarded, self.read_cache, self.defer_jobs]
        return [*loops, self.write_cache] if self.index == 0 else loops

    def every(self, seconds: float, step: Callable[[], None]) -> None:
        while not self.stop.wait(seconds):
            step()

    def limited(self) -> None:
        """Ask the shared limiter as fast as it answers: the nodes together offer far more than the rate."""
        while not self.stop.wait(0.005):
            start = time.time()
            try:
                ok = self.limiter.try_acquire()
            except Exception as exc:  # noqa: BLE001 - every error a caller sees is a figure
                self.log("err", op="limit", e=type(exc).__name__, t=start)
                continue
            if ok:
                self.log("adm", t0=start, t1=time.time())

    def upstream(self) -> None:
        """The call behind the breaker: fails while the coordinator's flag for this node exists."""
        if self.fail_flag.exists():
            raise ConnectionError("upstream down (soak drill)")

    def guarded(self) -> None:
        def step() -> None:
            start = time.time()
            try:
                self.breaker.call(self.upstream)
            except CircuitOpen:
                self.log("brk", o="open", t=start)
            except ConnectionError:
                self.log("brk", o="fail", t=start)
            except Exception as exc:  # noqa: BLE001
                self.log("err", op="breaker", e=type(exc).__name__, t=start)

        self.every(0.02, step)

    def degraded(self) -> bool:
        """Whether the tiered cache serves by its outage policy now (its L2 was found unreachable)."""
        return bool(getattr(self.cache.backend, "degraded", False))

    def read_cache(self) -> None:
        count = 0

        def step() -> None:
            nonlocal count
            count += 1
            key = f"item{count % CACHE_KEYS}"
            start, degraded = time.time(), self.degraded()
            try:
                value = self.cache.get(key)
            except Exception as exc:  # noqa: BLE001
                self.log("err", op="cache.get", e=type(exc).__name__, t=start)
                return
            deg = degraded or self.degraded()
            self.log("read", key=key, v=value["v"] if value else None, t0=start, deg=deg)

        self.every(0.025, step)

    def write_cache(self) -> None:
        version = 0

        def step() -> None:
            nonlocal version
            version += 1
            key = f"item{version % CACHE_KEYS}"
            start, degraded = time.time(), self.degraded()
            try:
                self.cache.set(key, {"v": version})
            except Exception as exc:  # noqa: BLE001
                self.log("err", op="cache.set", e=type(exc).__name__, t=start)
                return
            deg = degraded or self.degraded()
            self.log("write", key=key, v=version, t0=start, t1=time.time(), deg=deg)

        self.every(0.25, step)

    def defer_jobs(self) -> None:
        count = 0

        def step() -> None:
            nonlocal count
            count += 1
            start = time.time()
            try:
                handle = work.defer(n=count)
            except Exception as exc:  # noqa: BLE001
                self.log("err", op="defer", e=type(exc).__name__, t=start)
                return
            self.log("defer", job=handle.id, t0=start, t1=time.time())

        self.every(0.1, step)


def main(argv: list[str]) -> int:
    index, port = int(argv[0]), int(argv[1])
    directory = Path(os.environ["SOAK_DIR"])
    node = Node(index, directory)
    config = uvicorn.Config(
        create_app(), host="127.0.0.1", port=port, log_config=None, ws="websockets-sansio", lifespan="on"
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="ops", daemon=True).start()
    threads = [threading.Thread(target=loop, name=loop.__name__) for loop in node.loops()]
    for thread in threads:
        thread.start()
    stop_file = directory / "stop"
    while not stop_file.exists():
        node.log.flush()
        time.sleep(0.2)  # the coordinator's signal is a file; this loop also paces the log writes
    node.stop.set()
    for thread in threads:
        thread.join(30)
    node.log.flush()
    server.should_exit = True
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
