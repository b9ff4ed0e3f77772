"""Writing a save's bytes in a thread of its own, so hashing one chunk overlaps storing the last.

sha256 and the write (a syscall, or an S3 part upload) both release the GIL; done one after the other
they add up, done side by side a save runs at the speed of the slower one. The queue holds at most
``depth`` chunks, so memory stays bounded whatever the body's size. A write error is kept and raised to
the producer at its next ``put`` or at ``close``.
"""

from __future__ import annotations

import queue
import threading
from typing import Final

from buttress.files._blobs import BlobWriter

__all__ = ["WritePipe"]

_END: Final = b""


class WritePipe:
    """Feeds ``writer`` from a bounded queue in a daemon thread (see the module docstring)."""

    def __init__(self, writer: BlobWriter, *, depth: int = 2) -> None:
        self._writer = writer
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="buttress-files-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not _END:
            if self._error is None:
                try:
                    self._writer.write(chunk)
                except BaseException as exc:  # noqa: BLE001 - handed to the producer, see put/close
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, chunk: bytes) -> None:
        """Queue ``chunk`` (waits while ``depth`` chunks are pending); raises an earlier write's error."""
        self._raise()
        if chunk:
            self._queue.put(chunk)

    def close(self) -> None:
        """Wait until every queued chunk is written; raises the write error if there was one."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
        self._raise()

    def stop(self) -> None:
        """End the thread after what is queued, ignoring errors (the write is being aborted)."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
        self._error = None
