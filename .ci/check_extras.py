"""Run inside a fresh venv holding buttress with one extra: what it promises works, the rest names its extra.

``python .ci/check_extras.py EXTRA`` (core, redis, server, cli, db, jobs, files, s3, all). Every public
module imports, or raises MissingExtra naming an extra that is not installed; each feature below runs when
its extras are installed and otherwise raises MissingExtra naming one of them (the ``buttress`` script
exits 1 saying so).
A public module that imports also resolves every name in its ``__all__`` (``from module import *`` works).
Run from the repository root, it imports the installed wheel: ``.ci/`` is on sys.path, ``src/`` is not.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

INSTALLS = {
    "core": set(),
    "redis": {"redis"},
    "server": {"server"},
    "cli": {"cli"},
    "db": {"db"},
    "jobs": {"db", "jobs"},
    "files": {"db", "jobs", "files"},
    "s3": {"db", "jobs", "files", "s3"},
    "all": {"redis", "server", "cli", "db", "jobs", "files", "s3"},
}
PUBLIC_MODULES = [
    "buttress",
    "buttress.cache",
    "buttress.cli",
    "buttress.clock",
    "buttress.config",
    "buttress.container",
    "buttress.demo",
    "buttress.errors",
    "buttress.events",
    "buttress.files",
    "buttress.health_types",
    "buttress.http",
    "buttress.jobs",
    "buttress.observe",
    "buttress.observe.errors",
    "buttress.observe.health",
    "buttress.observe.logging",
    "buttress.observe.metrics",
    "buttress.observe.profiler",
    "buttress.observe.system",
    "buttress.realtime",
    "buttress.resilience",
    "buttress.server",
    "buttress.testing",
]
REDIS_URL = os.environ.get("BUTTRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def core() -> None:
    """The core promise: the foundation, events in memory, observe, resilience, cache and HTTP in memory."""
    import buttress
    from buttress.cache import Cache
    from buttress.events import EventBus
    from buttress.http import HttpClient
    from buttress.observe.health import HealthRegistry, disk_check
    from buttress.observe.metrics import MetricsRegistry
    from buttress.resilience import Backoff, CircuitBreaker, Retry
    from buttress.testing import Upstream

    names = {name: getattr(buttress, name) for name in buttress.__all__}
    assert names["load_settings"]().app.name
    buttress.configure_logging(level="WARNING")
    buttress.get_logger("ci").info("core install works")
    cache = Cache()
    cache.set("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    seen: list[str] = []
    with EventBus() as bus:
        bus.subscribe("ci.*", lambda event: seen.append(event.topic))
        bus.publish("ci.ok")
        bus.flush()
    assert seen == ["ci.ok"]
    calls: list[int] = []

    @Retry(on=ValueError, attempts=2, backoff=Backoff.constant(0))
    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("once")
        return "ok"

    assert flaky() == "ok"
    assert CircuitBreaker(name="ci").state.value == "closed"
    metrics = MetricsRegistry()
    metrics.counter("buttress_ci_checks_total", "Checks.").inc()
    assert b"buttress_ci_checks_total" in metrics.render_prometheus()
    health = HealthRegistry()
    health.register(disk_check(tempfile.gettempdir()))
    assert health.run_sync().status in {"pass", "warn"}
    importlib.import_module("sniffio")  # httpcore's async path tries it 4 times per request: it stays core
    with Upstream(seed=1) as upstream, HttpClient() as client:
        assert client.get(upstream.url(path="/ci")).status_code == 200


def redis() -> None:
    from buttress.cache import RedisBackend
    from buttress.events import create_event_bus
    from buttress.observe.health import redis_check
    from buttress.resilience import RedisState

    RedisState(REDIS_URL).close()
    RedisBackend(REDIS_URL).close()
    create_event_bus("redis", redis_url=REDIS_URL).close()
    check = redis_check(REDIS_URL)
    if check.close is not None:
        check.close()


def server() -> None:
    from buttress.config import Settings
    from buttress.server import create_app  # first: without [server] this is the MissingExtra

    with warnings.catch_warnings():  # starlette's notice about its test client, not ours to act on
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    with TestClient(create_app(Settings())) as client:
        assert client.get("/health/live").status_code == 200


def realtime() -> None:
    """A WebSocket client of a real uvicorn server receives a published event.

    A real server, not starlette's TestClient: the test client cancels the endpoint the moment its
    session closes, and an endpoint that is still tidying its tasks then fails the check now and then.
    """
    from buttress.realtime import get_realtime, realtime_router  # without [server]: the MissingExtra

    router = realtime_router(public=["ci.**"])

    import uvicorn
    from fastapi import FastAPI
    from websockets.sync.client import connect

    app = FastAPI()
    app.include_router(router)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)  # a real server starting, polled with a deadline
        with connect(f"ws://127.0.0.1:{port}/ws?topics=ci.*", open_timeout=10) as client:
            assert "welcome" in str(client.recv(timeout=10))
            get_realtime().publish("ci.hello", {"n": 1})
            frames = ""
            while '"ci.hello"' not in frames:
                frames += str(client.recv(timeout=10))
    finally:
        server.should_exit = True
        thread.join(10)


def db() -> None:
    from buttress.observe.health import HealthRegistry, database_check

    health = HealthRegistry()
    with tempfile.TemporaryDirectory() as folder:
        health.register(database_check(f"sqlite:///{folder}/ci.db"))
        assert health.run_sync().status == "pass", health.run_sync().to_dict()
    importlib.import_module("psycopg")
    importlib.import_module("aiosqlite")


def jobs() -> None:
    import asyncio

    importlib.import_module("buttress.jobs")  # first: without the [jobs] extra this names it
    from buttress.config import JobsSettings
    from buttress.db import Database
    from buttress.jobs import Jobs, Registry, Task

    registry = Registry()
    double: Task[..., int] = Task(lambda n: n * 2, name="double", registry=registry)
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{folder}/ci.db")
        queue = Jobs(db, settings=JobsSettings(), registry=registry)
        handle = double.configure(jobs=queue).defer(21)
        asyncio.run(queue.worker(concurrency=2).run(burst=True))
        assert handle.result(timeout=5) == 42
        db.close()


def files() -> None:
    importlib.import_module("buttress.files")  # first: without the [files] extra this names it
    from buttress.config import FilesSettings
    from buttress.db import Database
    from buttress.files import FileStore, LocalBlobStore

    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{folder}/ci.db")
        store = FileStore(LocalBlobStore(f"{folder}/files"), db=db, settings=FilesSettings(quota=10_000))
        saved = store.save(b"hello from CI\n", name="../ci.txt")
        assert (saved.name, saved.content_type) == ("ci.txt", "text/plain"), saved
        assert store.read_bytes(saved.id) == b"hello from CI\n"
        db.close()


def s3_module() -> None:
    store_class = importlib.import_module("buttress.files").S3BlobStore
    store_class("ci-bucket", endpoint_url="http://127.0.0.1:9", region="us-east-1")  # boto3 builds no socket


def demo_module() -> None:
    importlib.import_module("buttress.demo")


def script(*arguments: str) -> Callable[[], None]:
    """Run the installed ``buttress`` script; a missing extra is re-raised here from its stderr."""

    def run() -> None:
        command = [str(Path(sys.executable).with_name("buttress")), *arguments]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode == 1 and "pip install 'buttress[" in result.stderr:
            extra = result.stderr.split("pip install 'buttress[", 1)[1].split("]", 1)[0]
            raise MissingExtraReported(extra, result.stderr.strip())
        assert result.returncode == 0, (command, result.stdout, result.stderr)

    return run


class MissingExtraReported(Exception):
    """The script exited 1 naming an extra (its stderr), as MissingExtra would."""

    def __init__(self, extra: str, message: str) -> None:
        self.extra = extra
        super().__init__(message)


FEATURES: list[tuple[str, set[str], Callable[[], None]]] = [
    ("core", set(), core),
    ("redis event transport and health check", {"redis"}, redis),
    ("ops server", {"server"}, server),
    ("realtime over WebSocket", {"server"}, realtime),
    ("database health check, drivers", {"db"}, db),
    ("durable jobs on SQLite", {"db", "jobs"}, jobs),
    ("files on local disk", {"db", "jobs", "files"}, files),
    ("the S3 blob store", {"db", "jobs", "files", "s3"}, s3_module),
    ("buttress version", {"cli"}, script("version")),
    ("buttress config --check", {"cli"}, script("config", "--check")),
    ("buttress serve --help", {"cli"}, script("serve", "--help")),
    ("buttress.demo", {"cli", "server"}, demo_module),
]


def check(extra: str) -> list[str]:
    """Every failure, as a line; empty when the install keeps its promises."""
    from buttress._extras import MissingExtra

    installed = INSTALLS[extra]
    failures: list[str] = []
    for name in PUBLIC_MODULES:
        try:
            module = importlib.import_module(name)
            # Every public name resolves too (lazy exports included): `from module import *` must work.
            for public in getattr(module, "__all__", ()):
                getattr(module, public)
        except MissingExtra as missing:
            if missing.extra in installed:
                failures.append(f"import {name}: {missing}")
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the others
            failures.append(f"import {name}: {type(exc).__name__}: {exc}")
    for label, needs, feature in FEATURES:
        missing_extras = needs - installed
        try:
            feature()
        except (MissingExtra, MissingExtraReported) as missing:
            if missing.extra not in missing_extras:
                failures.append(f"{label}: named [{missing.extra}], expected one of {sorted(missing_extras)}")
            elif "pip install 'buttress[" not in str(missing):
                failures.append(f"{label}: the message does not say what to install: {missing}")
            continue
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        if missing_extras:
            failures.append(f"{label}: worked without {sorted(missing_extras)}, which it should need")
    return failures


def main() -> None:
    extra = sys.argv[1]
    failures = check(extra)
    for failure in failures:
        print(f"extras[{extra}]: FAIL {failure}", file=sys.stderr)
    if failures:
        raise SystemExit(1)
    print(f"extras[{extra}]: ok ({len(PUBLIC_MODULES)} modules, {len(FEATURES)} features)")


if __name__ == "__main__":
    main()
