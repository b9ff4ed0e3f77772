"""What a save accepts as data, turned into chunks: bytes, a binary file, an iterator, an async iterator,
or a Starlette ``UploadFile``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Final, Protocol, runtime_checkable

from buttress.errors import ValidationError

__all__ = ["CHUNK", "Data", "achunks", "chunks", "upload_file_hints"]

CHUNK: Final = 1024 * 1024


@runtime_checkable
class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


Data = bytes | bytearray | memoryview | _Readable | Iterable[bytes] | AsyncIterable[bytes] | Any


def _refuse(data: object) -> ValidationError:
    return ValidationError(
        f"data must be bytes, a binary file, an iterable of bytes or an UploadFile, got "
        f"{type(data).__name__}"
        + ("; encode text first, e.g. text.encode()" if isinstance(data, str) else ""),
        field="data",
    )


def _is_upload_file(data: object) -> bool:
    return hasattr(data, "filename") and hasattr(data, "file") and hasattr(data, "content_type")


def upload_file_hints(data: object) -> tuple[str | None, str | None]:
    """The client's file name and content type when ``data`` is an ``UploadFile``."""
    if _is_upload_file(data):
        return getattr(data, "filename", None), getattr(data, "content_type", None)
    return None, None


def chunks(data: object) -> Iterator[bytes]:
    """``data`` as chunks of at most :data:`CHUNK` bytes (files are read as they are consumed)."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        return (bytes(view[i : i + CHUNK]) for i in range(0, len(view), CHUNK))
    if _is_upload_file(data):
        data = data.file  # type: ignore[attr-defined]
    if isinstance(data, _Readable):
        return _read_all(data)
    if isinstance(data, str) or not isinstance(data, Iterable):
        raise _refuse(data)
    return iter(data)


def _read_all(handle: _Readable) -> Iterator[bytes]:
    while True:
        chunk: object = handle.read(CHUNK)
        if isinstance(chunk, str):
            raise ValidationError("the file was opened in text mode; open it with 'rb'", field="data")
        if not isinstance(chunk, bytes | bytearray) or not chunk:
            return
        yield bytes(chunk)


async def achunks(data: object) -> AsyncIterator[bytes]:
    """Async :func:`chunks`; also takes async iterables and an ``UploadFile``'s async ``read``."""
    if _is_upload_file(data) and hasattr(data, "read"):
        while chunk := await data.read(CHUNK):
            yield chunk
        return
    if isinstance(data, AsyncIterable):
        async for chunk in data:
            yield chunk
        return
    if isinstance(data, _Readable):  # a blocking file: each read in a worker thread, not on the loop
        source = _read_all(data)
        done: list[bytes] = []
        while (chunk := await asyncio.to_thread(next, source, done)) is not done:
            yield chunk
        return
    for chunk in chunks(data):
        yield chunk
