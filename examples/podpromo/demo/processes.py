"""The demo's moving parts: worker processes, a throwaway redis-server, and the app on uvicorn in a thread."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import uvicorn

__all__ = ["AppServer", "RedisServer", "WorkerProcess", "spare_port", "spawn_worker"]

ROOT = Path(__file__).resolve().parents[3]
"""The repository's root: workers run ``python -m examples.podpromo`` from there."""


def spare_port() -> int:
    """A free loopback port (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(ready: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.02)


class WorkerProcess:
    """``python -m examples.podpromo worker`` as a real OS process, its output in a log file."""

    def __init__(self, env: Mapping[str, str], log: Path, concurrency: int) -> None:
        self.log: IO[bytes] = log.open("wb")
        command = [sys.executable, "-m", "examples.podpromo", "worker", "--concurrency", str(concurrency)]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter, a fixed module
            command, cwd=ROOT, env=dict(env), stdout=self.log, stderr=subprocess.STDOUT
        )
        self.pid = self.process.pid
        self.started = time.monotonic()
        self.killed_at: float | None = None

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> float:
        """SIGKILL it: no cleanup, no goodbye; its leases run out on their own. Returns when it died."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.killed_at = time.time()
        return self.killed_at

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (a second SIGTERM, then SIGKILL, if it lingers)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class RedisServer:
    """``redis-server`` from PATH on a spare loopback port, no persistence; the demo kills and restarts it."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("--redis needs redis-server on PATH (apt-get install redis-server)")
        self.binary, self.folder, self.port = binary, folder, spare_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - redis-server from PATH, fixed arguments
            command, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for(self.answers, 10, "redis-server")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class AppServer:
    """The podpromo app on uvicorn in a background thread of this process."""

    def __init__(self, app: Any) -> None:
        self.port = spare_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="podpromo-app", daemon=True)

    def __enter__(self) -> AppServer:
        self.thread.start()
        _wait_for(lambda: self.server.started, 20, "the podpromo app")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def spawn_worker(folder: Path, number: int, concurrency: int) -> WorkerProcess:
    """Worker ``number``, with this process's environment (the demo's settings) and its log in ``folder``."""
    return WorkerProcess(dict(os.environ), folder / f"worker-{number}.log", concurrency)
