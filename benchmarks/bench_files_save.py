"""File saves: FileStore.save against a plain chunked write, and a 1 GiB upload's cost to the server.

Local saves: ``FileStore.save`` (and ``asave``) of an iterator of 1 MiB chunks into a LocalBlobStore
against the same chunks written to a file in the same directory (open, write, close), and against that
write plus a running sha256 (what any save that records a hash must do). Rounds interleave the
candidates; each figure is the median round. The page-cache rows never wait for the disk; the fsync rows
(``LocalBlobStore(fsync=True)`` against write + fsync) do. Every saved file is deleted after its round.

Uploads: ``SIZE`` bytes in one multipart request through buttress's ``upload_route`` on uvicorn in a
child process (tests/files/_fastapi_server.py), against the same request through Starlette's
``request.form()`` (which spools the file to a temp file) handed to ``FileStore.asave``. The server's
RSS growth is its peak during the upload (kernel VmHWM, reset first, and psutil samples) minus its RSS
before. ``BENCH_FILES_SAVE_MIB``, ``BENCH_FILES_UPLOAD_MIB`` and ``BENCH_FILES_ROUNDS`` change the sizes
and the rounds.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Final

import httpx
from tests.files._fastapi_server import PeakRss, file_body, upload_server

from benchmarks._harness import Row, Table, interleave
from buttress.config import FilesSettings
from buttress.db import Database
from buttress.files import FileStore, LocalBlobStore

__all__ = ["run"]

MIB: Final = 1024 * 1024
SAVE_MIB: Final = int(os.environ.get("BENCH_FILES_SAVE_MIB", "512"))
UPLOAD_MIB: Final = int(os.environ.get("BENCH_FILES_UPLOAD_MIB", "1024"))
ROUNDS: Final = int(os.environ.get("BENCH_FILES_ROUNDS", "5"))
UPLOAD_ROUNDS: Final = 3
CHUNK: Final = os.urandom(MIB)

PLAIN: Final = "plain chunked write"
HASHED: Final = "plain write + sha256"
SPOOLED: Final = "Starlette request.form()"


def _chunks() -> Iterator[bytes]:
    for _ in range(SAVE_MIB):
        yield CHUNK


async def _achunks() -> AsyncIterator[bytes]:
    for _ in range(SAVE_MIB):
        yield CHUNK


def _plain(directory: Path, *, hashed: bool = False, fsync: bool = False) -> Callable[[], float]:
    """Seconds to write the stream to a new file in ``directory`` (removed after timing)."""

    def write() -> float:
        path = directory / "plain.bin"
        started = time.perf_counter()
        digest = hashlib.sha256()
        with path.open("wb") as handle:
            for chunk in _chunks():
                if hashed:
                    digest.update(chunk)
                handle.write(chunk)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        elapsed = time.perf_counter() - started
        path.unlink()
        return elapsed

    return write


def _saved(store: FileStore, loop: asyncio.AbstractEventLoop, *, use_async: bool) -> Callable[[], float]:
    """Seconds for one save of the stream into ``store`` (the file deleted after timing)."""

    def save() -> float:
        started = time.perf_counter()
        if use_async:
            stored = loop.run_until_complete(store.asave(_achunks(), name="bench.bin"))
        else:
            stored = store.save(_chunks(), name="bench.bin")
        elapsed = time.perf_counter() - started
        assert stored.size == SAVE_MIB * MIB
        store.delete(stored.id)
        return elapsed

    return save


def _store(root: Path, *, fsync: bool) -> FileStore:
    return FileStore(
        LocalBlobStore(root / "blobs", fsync=fsync),
        db=Database(f"sqlite:///{root / 'files.db'}"),
        settings=FilesSettings(max_size=SAVE_MIB * MIB),
    )


def _save_rows() -> list[Row]:
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        root = Path(tmp)
        store, synced = _store(root, fsync=False), _store(root / "synced", fsync=True)
        directory = root / "blobs"  # the plain writes go where the store's temp files go
        cached = interleave(
            {
                "save": _saved(store, loop, use_async=False),
                "asave": _saved(store, loop, use_async=True),
                PLAIN: _plain(directory),
                HASHED: _plain(directory, hashed=True),
            },
            ROUNDS,
        )
        durable = interleave(
            {
                "save": _saved(synced, loop, use_async=False),
                PLAIN: _plain(root / "synced" / "blobs", fsync=True),
                HASHED: _plain(root / "synced" / "blobs", hashed=True, fsync=True),
            },
            max(3, ROUNDS // 2),
        )
        loop.close()
    anchors = {PLAIN: cached[PLAIN] * 1e9, HASHED: cached[HASHED] * 1e9}
    return [
        Row(f"save {SAVE_MIB} MiB in 1 MiB chunks (page cache)", cached["save"] * 1e9, anchors),
        Row(f"asave {SAVE_MIB} MiB in 1 MiB chunks (page cache)", cached["asave"] * 1e9, anchors),
        Row(
            f"save {SAVE_MIB} MiB, fsync before publishing",
            durable["save"] * 1e9,
            {PLAIN: durable[PLAIN] * 1e9, HASHED: durable[HASHED] * 1e9},
        ),
    ]


def _upload(spool: bool) -> tuple[list[float], list[int]]:
    """Seconds and server RSS growth per round for a ``UPLOAD_MIB`` upload through one server kind."""
    size = UPLOAD_MIB * MIB
    seconds: list[float] = []
    growth: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        root = Path(tmp)
        with upload_server(root, max_size=size, spool=spool) as server, httpx.Client(timeout=600) as client:
            warm = file_body(MIB)
            client.post(f"{server.url}/files", content=warm.chunks, headers=warm.headers).raise_for_status()
            for _ in range(UPLOAD_ROUNDS):
                body = file_body(size)
                with PeakRss(server.process) as peak:
                    started = time.perf_counter()
                    response = client.post(f"{server.url}/files", content=body.chunks, headers=body.headers)
                    seconds.append(time.perf_counter() - started)
                response.raise_for_status()
                growth.append(peak.growth)
                for stored in response.json()["files"]:
                    assert stored["size"] == size
                    file_id = stored["id"]
                    (root / "blobs" / "files" / file_id[:2] / file_id).unlink()
    return seconds, growth


def run() -> Table:
    rows = _save_rows()
    ours, our_growth = _upload(spool=False)
    theirs, their_growth = _upload(spool=True)
    rows.append(
        Row(
            f"{UPLOAD_MIB} MiB multipart upload on uvicorn (loopback)",
            statistics.median(ours) * 1e9,
            {SPOOLED: statistics.median(theirs) * 1e9},
        )
    )
    save_row = rows[0]
    mb = SAVE_MIB * MIB / 1e6
    upload_mb = UPLOAD_MIB * MIB / 1e6
    return Table(
        title="File saves (buttress.files)",
        anchors=[PLAIN, HASHED, SPOOLED],
        rows=rows,
        notes=[
            (
                f"Save throughput (page cache): save {mb / save_row.buttress_ns * 1e9:.0f} MB/s, plain "
                f"chunked write {mb / save_row.anchors_ns[PLAIN] * 1e9:.0f} MB/s, write + sha256 "
                f"{mb / save_row.anchors_ns[HASHED] * 1e9:.0f} MB/s; throughput ratio save/plain "
                f"{save_row.anchors_ns[PLAIN] / save_row.buttress_ns:.2f}x (budget >= 0.9x). Medians of "
                f"{ROUNDS} interleaved rounds."
            ),
            (
                f"Upload: {upload_mb / statistics.median(ours):.0f} MB/s through upload_route, "
                f"{upload_mb / statistics.median(theirs):.0f} MB/s through request.form() + asave; server "
                f"RSS growth (max of {UPLOAD_ROUNDS} rounds) {max(our_growth) / MIB:.1f} MiB for "
                f"upload_route (budget <= 32 MiB), {max(their_growth) / MIB:.1f} MiB for request.form()."
            ),
            (
                "The client (httpx, same machine) makes the body on the fly from one 1 MiB block; the "
                "server runs in a child process, so only its own memory is counted."
            ),
        ],
    )
