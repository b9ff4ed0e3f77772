"""A stored file as a read-only binary file object, pulled from the blob store's chunks as it is read."""

from __future__ import annotations

import io
from collections.abc import Iterator

__all__ = ["ChunkReader"]


class ChunkReader(io.RawIOBase):
    """``readinto`` fed by an iterator of chunks; wrap it in :class:`io.BufferedReader` for ``readline``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        return count

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()  # a generator's close releases the file handle or the HTTP body it holds
        super().close()
