"""One save in flight: bytes checked as they arrive, the quota reserved ahead of them, published whole.

:class:`Upload` is the pipeline every save runs through (``save``, ``asave``, the FastAPI helper). Each
chunk is counted before it is written: past the size limit the upload is aborted and ``FileTooLarge``
raised, so not one byte beyond the limit is stored. The quota reservation grows ahead of the bytes, in
steps, so space is always reserved before it is used. The first 8 KiB are held back until the type is
checked; a rejected type aborts before anything reaches the store. ``finish`` publishes the bytes (a
rename, or the multipart complete) and writes the file's row as the reservation settles. After any
error the upload is already aborted: temp data removed, reservation released. :class:`AsyncUpload` runs
the same pipeline from a coroutine, its blocking steps in a worker thread, buffering small chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from buttress.errors import ButtressError, FileTooLarge, FileTypeRejected, QuotaExceeded, ValidationError
from buttress.files._detect import HEAD_SIZE
from buttress.files._info import StoredFile
from buttress.files._pipe import WritePipe
from buttress.files._reservations import grow_plan, release_plan, renew_plan, settle_plan

if TYPE_CHECKING:
    from buttress.files._blobs import BlobWriter
    from buttress.files._store import FileStore

__all__ = ["AsyncUpload", "SaveRequest", "Upload"]

GROW_STEP: Final = 8 * 1024 * 1024  # bytes a reservation grows by while a body of unknown length streams
_ASYNC_BATCH: Final = 1024 * 1024  # an async upload hands the thread at least this much per write
_PIPED: Final = 64 * 1024  # chunks this big are written in a thread of their own while the next is hashed
_log = logging.getLogger("buttress.files")


@dataclass(frozen=True, slots=True)
class SaveRequest:
    """A save's checked arguments."""

    id: str
    key: str
    name: str
    owner: str | None
    declared_type: str | None
    declared_size: int | None
    max_size: int
    allowed: tuple[str, ...]
    tags: tuple[str, ...]
    metadata: Mapping[str, str]


def too_large(request: SaveRequest, seen: int) -> FileTooLarge:
    """The error of a body that passed its limit after ``seen`` bytes (or declared ``seen``)."""
    return FileTooLarge(
        f"the file is over its {request.max_size} byte limit (at least {seen} bytes); nothing was kept",
        context={"limit": request.max_size, "seen": seen},
    )


class Upload:
    """A save in flight (see the module docstring); made by ``FileStore.begin``."""

    def __init__(self, store: FileStore, request: SaveRequest, writer: BlobWriter, reserved: int) -> None:
        self.request = request
        self.size = 0
        self._store = store
        self._writer = writer
        self._reserved = reserved
        self._hash = hashlib.sha256()
        self._head: bytearray | None = bytearray()
        self._content_type: str | None = None
        self._renewed = store.clock.time()
        self._closed = False
        self._pipe: WritePipe | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self._closed:
            self.abort()

    @property
    def closed(self) -> bool:
        """True once finished or aborted."""
        return self._closed

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add ``chunk``; raises, after aborting, FileTooLarge, FileTypeRejected or QuotaExceeded."""
        if self._closed:
            raise ValidationError("this upload is finished or aborted; begin a new one", field="upload")
        given: object = chunk
        if not isinstance(given, bytes | bytearray | memoryview):
            self.abort()
            raise ValidationError(
                f"chunks must be bytes, got {type(chunk).__name__}; encode text first", field="data"
            )
        if not chunk:
            return
        size = self.size + len(chunk)
        if size > self.request.max_size:
            self._fail("too_large")
            raise too_large(self.request, size)
        declared = self.request.declared_size
        if declared is not None and size > declared:
            self._fail(None)
            raise ValidationError(
                f"the body passed the {declared} bytes declared; nothing was kept", field="size"
            )
        try:
            self._reserve_up_to(size)
            self._hash.update(chunk)
            self.size = size
            if self._head is not None:
                self._head += chunk
                if len(self._head) >= HEAD_SIZE:
                    self._flush_head()
            else:
                self._store_chunk(bytes(chunk) if not isinstance(chunk, bytes) else chunk)
        except BaseException as exc:
            self._fail(_reason(exc))
            raise

    def _reserve_up_to(self, size: int) -> None:
        store = self._store
        now = store.clock.time()
        if size > self._reserved:
            needed = size - self._reserved
            headroom = self.request.max_size - self._reserved
            ample = min(
                max(GROW_STEP, self._reserved, needed), headroom
            )  # doubling: few steps for big bodies
            try:
                self._grow(ample, now)
            except QuotaExceeded:
                if ample <= needed:
                    raise
                self._grow(needed, now)  # near the quota: only what this chunk needs
        elif now - self._renewed > store.settings.reservation_ttl / 3:
            store.runner.run(lambda: renew_plan(self.request.id, now + store.settings.reservation_ttl))
            self._renewed = now

    def _store_chunk(self, chunk: bytes) -> None:
        if self._pipe is None and len(chunk) >= _PIPED:
            self._pipe = WritePipe(self._writer)
        if self._pipe is not None:
            self._pipe.put(chunk)
        else:
            self._writer.write(chunk)

    def _grow(self, more: int, now: float) -> None:
        store = self._store
        store.runner.run(
            lambda: grow_plan(
                self.request.id,
                self.request.owner,
                more,
                now + store.settings.reservation_ttl,
                store.limits,
                postgres=store.postgres,
            )
        )
        self._reserved += more
        self._renewed = now

    def _flush_head(self) -> None:
        head, self._head = bytes(self._head or b""), None
        self._content_type = self._store.detector.check(
            head, name=self.request.name, declared=self.request.declared_type, allowed=self.request.allowed
        )
        if head:
            self._store_chunk(head)

    def finish(self) -> StoredFile:
        """Publish the bytes and record the file; returns it (raises after aborting on any failure)."""
        if self._closed:
            raise ValidationError("this upload is finished or aborted; begin a new one", field="upload")
        request = self.request
        if request.declared_size is not None and self.size != request.declared_size:
            self._fail(None)
            raise ValidationError(
                f"the body held {self.size} bytes, not the {request.declared_size} declared",
                field="size",
            )
        try:
            if self._head is not None:
                self._flush_head()
            if self._pipe is not None:
                self._pipe.close()
            self._writer.commit()
        except BaseException as exc:
            self._fail(_reason(exc))
            raise
        now = self._store.clock.time()
        stored = StoredFile(
            id=request.id,
            key=request.key,
            name=request.name,
            owner=request.owner,
            content_type=self._content_type or "application/octet-stream",
            size=self.size,
            sha256=self._hash.hexdigest(),
            state="stored",
            created_at=now,
            accessed_at=now,
            tags=request.tags,
            metadata=dict(request.metadata),
        )
        try:
            self._store.runner.run(lambda: settle_plan(request.id, stored, postgres=self._store.postgres))
        except BaseException:
            self._closed = True
            self._store.blobs.delete(request.key)
            self._release_quietly()
            raise
        self._closed = True
        self._store.telemetry.saved(stored)
        return stored

    def abort(self) -> None:
        """Drop what was written and give the reservation back (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._pipe is not None:
            self._pipe.stop()
        self._writer.abort()
        self._release_quietly()

    def _fail(self, reason: str | None) -> None:
        if reason is not None:
            self._store.telemetry.rejected(reason)
        self.abort()

    def _release_quietly(self) -> None:
        try:
            self._store.runner.run(
                lambda: release_plan(self.request.id, self.request.owner, postgres=self._store.postgres)
            )
        except ButtressError:  # the database is away: the reservation expires and the sweeper frees it
            _log.warning("could not release reservation %s; the sweeper will", self.request.id, exc_info=True)


def _reason(error: BaseException) -> str | None:
    if isinstance(error, FileTooLarge):
        return "too_large"
    if isinstance(error, FileTypeRejected):
        return "type"
    if isinstance(error, QuotaExceeded):
        return "quota"
    return None


class AsyncUpload:
    """:class:`Upload` driven from a coroutine: the limit checked at once, blocking steps in a thread.

    Chunks of at least 1 MiB go to the thread as they are; smaller ones are gathered and joined once.
    """

    def __init__(self, upload: Upload) -> None:
        self._upload = upload
        self._pending: list[bytes] = []
        self._pending_size = 0

    @property
    def request(self) -> SaveRequest:
        return self._upload.request

    @property
    def size(self) -> int:
        """Bytes accepted so far (written or gathered)."""
        return self._upload.size + self._pending_size

    @property
    def closed(self) -> bool:
        return self._upload.closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self._upload.closed:
            await self.abort()

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add ``chunk``; the size limit is checked before it is kept."""
        upload = self._upload
        given: object = chunk
        if not isinstance(given, bytes | bytearray | memoryview) or upload.closed:
            await asyncio.to_thread(upload.write, chunk)  # raises the sync side's error
            return
        seen = self.size + len(chunk)
        if seen > upload.request.max_size:
            self._drop()
            await asyncio.to_thread(upload._fail, "too_large")
            raise too_large(upload.request, seen)
        if not self._pending and len(chunk) >= _ASYNC_BATCH:
            await asyncio.to_thread(upload.write, chunk)
            return
        self._pending.append(bytes(chunk))
        self._pending_size += len(chunk)
        if self._pending_size >= _ASYNC_BATCH:
            await self._flush()

    def _drop(self) -> None:
        self._pending.clear()
        self._pending_size = 0

    async def _flush(self) -> None:
        if self._pending:
            batch = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._drop()
            await asyncio.to_thread(self._upload.write, batch)

    async def finish(self) -> StoredFile:
        """Async :meth:`Upload.finish`."""
        try:
            await self._flush()
        except BaseException:
            if not self._upload.closed:
                await asyncio.to_thread(self._upload.abort)
            raise
        return await asyncio.to_thread(self._upload.finish)

    async def abort(self) -> None:
        """Async :meth:`Upload.abort`."""
        self._drop()
        await asyncio.to_thread(self._upload.abort)
