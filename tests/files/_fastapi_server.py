"""An upload server in a child process and a multipart body made on the fly, to measure server memory.

``python -m tests.files._fastapi_server ROOT [--max-size N] [--spool]`` serves ``POST /files`` on a free
loopback port over a FileStore in ROOT (its SQLite database there too) and prints the port once it
listens. The route is buttress's streaming :func:`~buttress.files.upload_route`, or with ``--spool``
Starlette's ``request.form()`` (which spools each file to a temp file) handed to ``FileStore.asave``.
The memory tests and ``benchmarks/bench_files_save.py`` share it, so the client's own memory is never
counted as the server's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psutil
from fastapi import FastAPI, Request

ROOT: Final = Path(__file__).resolve().parents[2]
BOUNDARY: Final = "buttress-upload-boundary-7f3a"
BLOCK: Final = bytes(range(256)) * 4096  # 1 MiB that no detector calls an executable or a script
STARTUP_SECONDS: Final = 30.0


@dataclass(frozen=True, slots=True)
class Body:
    """A multipart body with one file part: its headers, its chunks (made as they are read), its length."""

    headers: dict[str, str]
    chunks: Iterator[bytes]
    length: int


def file_body(size: int, *, name: str = "big.bin", block: bytes = BLOCK) -> Body:
    """One file of ``size`` bytes (``block`` repeated) in field ``file``, never held whole."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        left = size
        while left > 0:
            piece = block[: min(len(block), left)]
            left -= len(piece)
            yield piece
        yield tail

    length = len(head) + size + len(tail)
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", "content-length": str(length)}
    return Body(headers, chunks(), length)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread of this process on a free loopback port; yield its URL."""
    import uvicorn

    listener = _listener()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:  # a bounded wait for the lifespan to start
        assert thread.is_alive(), "uvicorn stopped during startup"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_SECONDS)
        listener.close()
        assert not thread.is_alive(), "uvicorn did not stop in time"


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """A running upload server: its base URL and its process, for psutil."""

    url: str
    process: psutil.Process


@contextmanager
def upload_server(root: Path, *, max_size: int, spool: bool = False) -> Iterator[ServerProcess]:
    """Start the server in a child process; stop it (SIGTERM, then a bounded wait) on exit."""
    command = [sys.executable, "-m", "tests.files._fastapi_server", str(root), "--max-size", str(max_size)]
    if spool:
        command.append("--spool")
    env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTRESS_")}
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = _read_line(child, STARTUP_SECONDS)
        yield ServerProcess(f"http://127.0.0.1:{int(line)}", psutil.Process(child.pid))
    finally:
        child.terminate()
        try:
            child.wait(STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(STARTUP_SECONDS)
        if child.stdout is not None:
            child.stdout.close()


def _read_line(child: subprocess.Popen[str], timeout: float) -> str:
    """The child's first stdout line, waiting at most ``timeout`` seconds for it."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(child.stdout.readline() if child.stdout else ""))
    reader.start()
    reader.join(timeout)
    if not lines or not lines[0].strip():
        child.kill()
        raise RuntimeError(f"the upload server did not start within {timeout} s (exit {child.poll()})")
    return lines[0]


class PeakRss:
    """The most resident memory a process reached while this was open, sampled and from the kernel.

    On entry the kernel's peak (``VmHWM``) is reset (``/proc/<pid>/clear_refs``); on exit the growth is
    the larger of that peak and psutil's 5 ms samples, minus the resident size at entry.
    """

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.baseline = 0
        self.growth = 0
        self._peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._reset_kernel_peak()
        self.baseline = self._peak = self.process.memory_info().rss
        self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._sampler.join(STARTUP_SECONDS)
        self.growth = max(self._peak, self._kernel_peak()) - self.baseline

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            try:
                self._peak = max(self._peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def _reset_kernel_peak(self) -> None:
        with contextlib.suppress(OSError):  # not Linux, or not allowed: the samples alone
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def _kernel_peak(self) -> int:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0


def _app(root: Path, max_size: int, spool: bool) -> Any:
    from buttress.config import FilesSettings, Settings
    from buttress.db import Database
    from buttress.files import FileStore, LocalBlobStore
    from buttress.files._fastapi import upload_route
    from tests.server.conftest import install_isolated

    store = FileStore(
        LocalBlobStore(root / "blobs"),
        db=Database(f"sqlite:///{root / 'files.db'}"),
        settings=FilesSettings(max_size=max_size),
    )
    store.ensure_schema()
    app = FastAPI()
    install_isolated(app, Settings(_env_file=None))
    if not spool:
        app.include_router(upload_route(store, path="/files"))
        return app

    @app.post("/files", status_code=201)
    async def spooled(request: Request) -> dict[str, Any]:
        form = await request.form(max_part_size=max_size)
        upload = form["file"]
        stored = await store.asave(upload, name=getattr(upload, "filename", None))
        await form.close()
        return {"files": [{"id": stored.id, "size": stored.size, "sha256": stored.sha256}]}

    return app


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.files._fastapi_server")
    parser.add_argument("root", type=Path)
    parser.add_argument("--max-size", type=int, default=2**40)
    parser.add_argument("--spool", action="store_true")
    args = parser.parse_args(argv)
    import uvicorn

    app = _app(args.root, args.max_size, args.spool)
    listener = _listener()
    print(listener.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[listener])


if __name__ == "__main__":
    main(sys.argv[1:])
