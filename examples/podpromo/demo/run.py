"""The demo's run, start to end: services, app, workers, uploads, the kill, the figures.

:func:`run_demo` returns the report as plain data (what ``--json`` prints); :mod:`.report` renders it.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory, mkdtemp
from typing import Any

from rich.console import Console

from buttress.testing import Fault, Latency, Upstream
from examples.podpromo.demo.chaos import RedisChaos
from examples.podpromo.demo.processes import RedisServer, spawn_worker
from examples.podpromo.hosts import Hosts

__all__ = ["Options", "run_demo"]


@dataclass(frozen=True, slots=True)
class Options:
    """What ``python -m examples.podpromo.demo`` was asked for."""

    episodes: int = 24
    seed: int = 7
    workers: int = 2
    concurrency: int = 4
    lease: float = 3.0
    redis: bool = False
    time_limit: float = 50.0
    live: bool = True
    keep: bool = False


def settings_env(folder: Path, options: Options, redis_url: str | None) -> dict[str, str]:
    """What the app and every worker share: embedded defaults in ``folder``, unless the user set URLs."""
    env = {
        "BUTTRESS_FILES__URL": str(folder / "files"),
        "BUTTRESS_FILES__OWNER_QUOTA": "3MB",
        "BUTTRESS_JOBS__LEASE": str(options.lease),
        "BUTTRESS_DB__SLOW_QUERY_MS": "20",  # the report lists what was slower
        "BUTTRESS_LOGGING__LEVEL": "ERROR",
        "PODPROMO_CONCURRENCY": str(max(2, options.workers * options.concurrency - 2)),
    }
    if not os.environ.get("BUTTRESS_DATABASE_URL"):
        env["BUTTRESS_DATABASE_URL"] = f"sqlite:///{folder / 'podpromo.db'}"
    if redis_url:
        env["BUTTRESS_REDIS_URL"] = redis_url
    if redis_url or os.environ.get("BUTTRESS_REDIS_URL"):
        env["BUTTRESS_RESILIENCE__STORE"] = "redis"  # breakers, limiters and budgets shared by the workers
        env["BUTTRESS_EVENTS__TRANSPORT"] = "redis"
    return env


def start_services(upstream: Upstream) -> Hosts:
    """A flaky transcriber (25 % 503s, slow), a clip cutter that allows 30 requests a second, a dead host."""
    upstream.add("transcribe", Fault(errors={503: 0.25}, latency=Latency.uniform(0.3, 0.9)))
    upstream.add("clips", Fault(rate_limit="30/s", retry_after=0.2, latency=0.02))
    upstream.add("thumbnails")
    upstream.set_down("thumbnails")
    return Hosts(*(upstream.url(name).rstrip("/") for name in ("transcribe", "clips", "thumbnails")))


def run_demo(options: Options, console: Console | None = None) -> dict[str, Any]:
    """Run the whole demo and return its report as plain data."""
    started = time.monotonic()
    kept = nullcontext(mkdtemp(prefix="podpromo-demo-")) if options.keep else None
    with kept or TemporaryDirectory(prefix="podpromo-demo-") as temp:
        folder = Path(temp)
        # This process's warnings (a Redis that went away, a breaker that opened) go to a file, not over the
        # live view; the workers' go to their own files. The report counts the lines about Redis.
        logging.basicConfig(filename=folder / "app.log", level=logging.WARNING, force=True)
        redis = RedisServer(folder) if options.redis else None
        try:
            os.environ.update(settings_env(folder, options, redis.url if redis else None))
            with Upstream(seed=options.seed) as upstream:
                hosts = start_services(upstream)
                os.environ.update(hosts.env())
                workers = [spawn_worker(folder, n, options.concurrency) for n in range(options.workers)]
                try:
                    from examples.podpromo.demo.session import Session  # noqa: PLC0415 - after the settings

                    chaos = RedisChaos(redis)
                    session = Session(
                        options, folder, upstream=upstream, chaos=chaos, workers=workers, started=started
                    )
                    return session.run(console)
                finally:
                    for worker in workers:
                        worker.stop()
        finally:
            if redis is not None:
                redis.stop()
