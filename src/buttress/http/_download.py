"""Streaming downloads: straight to disk, capped, and all-or-nothing.

The body goes chunk by chunk into a hidden ``.<name>.<random>.part`` file next to the destination, which
is renamed over it (atomically, on the same filesystem) only once the body is complete and flushed. A
declared Content-Length over ``max_bytes`` is refused before any byte is written; a body that grows past
it while streaming (no or a lying Content-Length) is aborted at that chunk. Any failure, an exception
from ``progress`` included, deletes the partial file: the destination is either the whole body, or what
it was before.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from buttress.errors import DownloadTooLarge, ValidationError

if TYPE_CHECKING:
    import httpx

__all__ = ["Download", "adownload_to", "check_download", "download_to"]


@dataclass(frozen=True, slots=True)
class Download:
    """A finished download: where it is, how many bytes, how long it took."""

    path: Path
    size: int
    elapsed: float
    content_type: str | None


def check_download(dest: object, max_bytes: int | None, chunk_size: int) -> Path:
    """``dest`` as a Path, once the arguments are known good: checked before the request is sent."""
    try:
        path = Path(dest)  # type: ignore[arg-type]  # anything else is refused just below
    except TypeError:
        raise ValidationError(
            f"dest must be a file path (str or Path), got {type(dest).__name__}; e.g. 'downloads/file.bin'",
            field="dest",
        ) from None
    _check(path, max_bytes, chunk_size)
    return path


def _check(dest: Path, max_bytes: int | None, chunk_size: int) -> None:
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0
    ):
        raise ValidationError(
            f"max_bytes must be a byte count >= 0 or None for no cap, got {max_bytes!r}; e.g. 50_000_000",
            field="max_bytes",
        )
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValidationError(
            f"chunk_size must be an integer >= 1, got {chunk_size!r}; e.g. 65536", field="chunk_size"
        )
    if not dest.parent.is_dir():
        raise ValidationError(
            f"dest {str(dest)!r} is in a directory that does not exist; create {str(dest.parent)!r} first",
            field="dest",
        )
    if dest.is_dir():
        raise ValidationError(f"dest {str(dest)!r} is a directory; give a file path inside it", field="dest")


def _declared(response: httpx.Response, max_bytes: int | None) -> int | None:
    """The Content-Length, after refusing one over the cap (before anything is written)."""
    header = response.headers.get("content-length")
    total = int(header) if header is not None and header.isdigit() else None
    if max_bytes is not None and total is not None and total > max_bytes:
        raise _too_large(response, max_bytes, f"its Content-Length is {total} bytes")
    return total


def _too_large(response: httpx.Response, max_bytes: int, why: str) -> DownloadTooLarge:
    from buttress.http._core import public_url  # noqa: PLC0415 - avoids a cycle

    url = public_url(response.request.url)
    return DownloadTooLarge(
        f"download of {url} refused: {why}, over max_bytes={max_bytes}; nothing was written",
        context={"url": url, "max_bytes": max_bytes},
    )


def _check_size(response: httpx.Response, done: int, max_bytes: int | None) -> None:
    if max_bytes is not None and done > max_bytes:
        raise _too_large(response, max_bytes, f"its body passed {max_bytes} bytes")


def _partial(dest: Path) -> tuple[IO[bytes], Path]:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the caller, renamed or deleted
        mode="wb", dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
    )
    return handle, Path(handle.name)


def _finish(handle: IO[bytes], part: Path, dest: Path) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(part, dest)


def _discard(handle: IO[bytes], part: Path) -> None:
    handle.close()
    part.unlink(missing_ok=True)


def download_to(
    response: httpx.Response,
    dest: Path,
    *,
    max_bytes: int | None,
    progress: Callable[[int, int | None], object] | None,
    chunk_size: int,
) -> Download:
    """Write a streamed response's body to ``dest`` (see the module docs); check_download came first."""
    started = time.monotonic()
    total = _declared(response, max_bytes)
    handle, part = _partial(dest)
    done = 0
    try:
        for chunk in response.iter_bytes(chunk_size):
            done += len(chunk)
            _check_size(response, done, max_bytes)
            handle.write(chunk)
            if progress is not None:
                progress(done, total)
        _finish(handle, part, dest)
    except BaseException:
        _discard(handle, part)
        raise
    return Download(dest, done, time.monotonic() - started, response.headers.get("content-type"))


async def adownload_to(
    response: httpx.Response,
    dest: Path,
    *,
    max_bytes: int | None,
    progress: Callable[[int, int | None], object] | None,
    chunk_size: int,
) -> Download:
    """:func:`download_to` for async responses; the file work runs in a worker thread."""
    started = time.monotonic()
    total = _declared(response, max_bytes)
    # Created here, not in a worker thread: a task cancelled while a thread creates the file would never learn
    # its name, and could not delete it.
    handle, part = _partial(dest)
    done = 0
    try:
        async for chunk in response.aiter_bytes(chunk_size):
            done += len(chunk)
            _check_size(response, done, max_bytes)
            await asyncio.to_thread(handle.write, chunk)
            if progress is not None:
                progress(done, total)
        await asyncio.to_thread(_finish, handle, part, dest)
    except BaseException:
        _discard(handle, part)  # synchronously: a cancelled task must not leave the partial file behind
        raise
    return Download(dest, done, time.monotonic() - started, response.headers.get("content-type"))
