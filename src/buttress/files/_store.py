"""``FileStore``: the files' public face over a blob store (bytes) and the database (rows and quotas).

Saves stream through :class:`~buttress.files._upload.Upload`; reads stream from the blob store; delete,
archive and restore keep the row, the quota counters and the bytes in step. The async methods run the
same code in a worker thread: blob stores (local disk, boto3) block, and the quota steps are short
transactions. Outage policy: files are durable, so when the database or the blob store cannot be
reached the call raises ``BackendUnavailable``; nothing is kept in memory instead.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import io
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Literal

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import FilesSettings
from buttress.db import Database, PlanRunner, SchemaGate
from buttress.errors import ButtressError, ConflictError, NotFoundError, QuotaExceeded, ValidationError
from buttress.files._archive import archive_key, copy_blob
from buttress.files._blobs import BlobStore
from buttress.files._catalog import (
    Listing,
    ScopeUsage,
    archived_plan,
    delete_plan,
    get_plan,
    list_plan,
    restored_plan,
    set_quota_plan,
    touch_plan,
    usage_plan,
)
from buttress.files._cleanup import CleanupReport, cleanup
from buttress.files._detect import TypeDetector, validate_allowed
from buttress.files._info import FileState, StoredFile
from buttress.files._names import safe_name
from buttress.files._reader import ChunkReader
from buttress.files._reservations import Limits, NewReservation, guard_plan, reserve_plan, unguard_plan
from buttress.files._retention import Retention, check_rules
from buttress.files._sources import achunks, chunks, upload_file_hints
from buttress.files._stats import StorageStats, stats_plan
from buttress.files._sweep import SweepReport, sweep
from buttress.files._telemetry import FilesTelemetry
from buttress.files._upload import GROW_STEP, AsyncUpload, SaveRequest, Upload, too_large
from buttress.files._urls import blob_store_for

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["FILES_REVISION", "FileStore"]

FILES_REVISION: Final = "0003"
_HOST: Final = socket.gethostname()


_MEDIA_TYPE: Final = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9*][\w.+*-]*")
_COPY_GUARD: Final = 86_400.0  # seconds a copy's guard outlives its start when its process is elsewhere


class FileStore:
    """Files with limits, types by content and quotas, in a directory or an S3 bucket.

    ``blobs``: where the bytes go (default: ``settings.url``, a directory or ``s3://bucket/prefix``);
    ``archive``: where archived bytes go (default: ``settings.archive_url``, else ``archive/`` in
    ``blobs``); ``db``: where rows and quota counters live (default: ``BUTTRESS_DATABASE_URL``).
    """

    def __init__(
        self,
        blobs: BlobStore | None = None,
        *,
        db: Database | None = None,
        archive: BlobStore | None = None,
        settings: FilesSettings | None = None,
        clock: Clock | None = None,
        detector: TypeDetector | None = None,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
        retention: Sequence[Retention] = (),
    ) -> None:
        if settings is not None and not isinstance(settings, FilesSettings):
            raise ValidationError(
                f"settings must be a FilesSettings, got {type(settings).__name__}; "
                "e.g. FilesSettings(max_size='500MB')",
                field="settings",
            )
        if settings is None:
            from buttress.config import get_settings  # noqa: PLC0415 - only when none is given

            settings = get_settings().files
        self.settings = settings
        self.db = db if db is not None else Database()
        self.blobs = blobs if blobs is not None else blob_store_for(settings.url, settings)
        if archive is None and settings.archive_url is not None:
            archive = blob_store_for(settings.archive_url, settings)
        self.archive_blobs = archive if archive is not None else self.blobs
        self.clock = clock or SYSTEM_CLOCK
        self.detector = detector or TypeDetector()
        self.telemetry = FilesTelemetry(metrics, events)
        self.runner = PlanRunner(self.db)
        self.postgres = self.db.backend == "postgresql"
        self.limits = Limits(settings.quota, settings.owner_quota)
        self.allowed = validate_allowed(settings.allowed_types, "files.allowed_types")
        self.retention = check_rules(retention, field="retention", quota=self.limits.total)
        self._schema = SchemaGate(self.db, FILES_REVISION, auto_migrate=settings.auto_migrate)

    def __repr__(self) -> str:
        return f"<FileStore {self.blobs.kind}:{self.blobs.location}>"

    # -- schema -------------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create or upgrade the file tables once per process (``files.auto_migrate``; see SchemaGate)."""
        self._schema.ensure()

    # -- saving ---------------------------------------------------------------------------------------

    def _request(
        self,
        *,
        name: str | None,
        owner: str | None,
        content_type: str | None,
        size: int | None,
        max_size: int | None,
        allowed_types: Sequence[str] | None,
        tags: Sequence[str],
        metadata: Mapping[str, str] | None,
    ) -> SaveRequest:
        if name is not None and not isinstance(name, str):
            raise ValidationError(f"name must be a string, got {type(name).__name__}", field="name")
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise ValidationError(
                f"owner must be a non-empty string, got {owner!r}; e.g. 'user-42'", field="owner"
            )
        if content_type is not None and (
            not isinstance(content_type, str) or not _MEDIA_TYPE.fullmatch(content_type.split(";")[0].strip())
        ):
            raise ValidationError(
                f"content_type must be a media type such as 'image/png', got {content_type!r}",
                field="content_type",
            )
        limit = self.settings.max_size if max_size is None else max_size
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ValidationError(
                f"max_size must be a positive number of bytes, got {max_size!r}", field="max_size"
            )
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValidationError(f"size must be the body's length in bytes, got {size!r}", field="size")
        allowed = self.allowed if allowed_types is None else validate_allowed(allowed_types, "allowed_types")
        if isinstance(tags, str) or not all(isinstance(tag, str) and tag for tag in tags):
            raise ValidationError(f"tags must be a list of non-empty strings, got {tags!r}", field="tags")
        meta = dict(metadata or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise ValidationError(
                "metadata must map strings to strings, e.g. {'episode': '12'}", field="metadata"
            )
        file_id = uuid.uuid4().hex
        return SaveRequest(
            id=file_id,
            key=f"files/{file_id[:2]}/{file_id}",
            name=safe_name(name),
            owner=owner,
            declared_type=content_type,
            declared_size=size,
            max_size=int(limit),
            allowed=allowed,
            tags=tuple(dict.fromkeys(tags)),
            metadata=meta,
        )

    def begin(
        self,
        *,
        name: str | None = None,
        owner: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        max_size: int | None = None,
        allowed_types: Sequence[str] | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> Upload:
        """Start a save: arguments checked, quota reserved; feed it with ``write`` and end with ``finish``.

        ``size`` is the declared length (refused at once when over ``max_size``, reserved whole, and
        checked at the end); ``content_type`` the client's claim, checked against the content.
        """
        request = self._request(
            name=name,
            owner=owner,
            content_type=content_type,
            size=size,
            max_size=max_size,
            allowed_types=allowed_types,
            tags=tags,
            metadata=metadata,
        )
        if request.declared_size is not None and request.declared_size > request.max_size:
            self.telemetry.rejected("too_large")
            raise too_large(request, request.declared_size)
        self.ensure_schema()
        declared = request.declared_size
        first = min(GROW_STEP if declared is None else declared, request.max_size)
        writer = self.blobs.writer(request.key)
        try:
            first = self._reserve(request, writer.temp, first, exact=declared is not None)
        except BaseException as exc:
            writer.abort()
            if isinstance(exc, QuotaExceeded):
                self.telemetry.rejected("quota")
            raise
        return Upload(self, request, writer, first)

    def _reserve(self, request: SaveRequest, temp: str | None, first: int, *, exact: bool) -> int:
        """Reserve ``first`` bytes; for a body of unknown length, nothing yet when that much is not free
        (its chunks then reserve what they need as they come). Returns what was reserved."""
        now = self.clock.time()
        new = NewReservation(
            id=request.id,
            owner=request.owner,
            bytes=first,
            temp=temp,
            key=request.key,
            host=_HOST,
            pid=os.getpid(),
            now=now,
            expires_at=now + self.settings.reservation_ttl,
        )
        try:
            self.runner.run(lambda: reserve_plan(new, self.limits, postgres=self.postgres))
        except QuotaExceeded:
            if exact or first == 0:
                raise
            return self._reserve(request, temp, 0, exact=True)
        return first

    async def abegin(
        self,
        *,
        name: str | None = None,
        owner: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        max_size: int | None = None,
        allowed_types: Sequence[str] | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> AsyncUpload:
        """Async :meth:`begin`."""
        upload = await asyncio.to_thread(
            lambda: self.begin(
                name=name,
                owner=owner,
                content_type=content_type,
                size=size,
                max_size=max_size,
                allowed_types=allowed_types,
                tags=tags,
                metadata=metadata,
            )
        )
        return AsyncUpload(upload)

    def save(
        self,
        data: object,
        *,
        name: str | None = None,
        owner: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        max_size: int | None = None,
        allowed_types: Sequence[str] | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> StoredFile:
        """Store ``data`` (bytes, a binary file, an iterable of bytes, an ``UploadFile``) as a new file."""
        source = chunks(data)
        name, content_type, size = _described(data, name, content_type, size)
        with self.begin(
            name=name,
            owner=owner,
            content_type=content_type,
            size=size,
            max_size=max_size,
            allowed_types=allowed_types,
            tags=tags,
            metadata=metadata,
        ) as upload:
            for chunk in source:
                upload.write(chunk)
            return upload.finish()

    async def asave(
        self,
        data: object,
        *,
        name: str | None = None,
        owner: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        max_size: int | None = None,
        allowed_types: Sequence[str] | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> StoredFile:
        """Async :meth:`save`; also takes an async iterable of bytes."""
        if isinstance(data, str):
            chunks(data)  # raises the ValidationError naming the fix
        name, content_type, size = _described(data, name, content_type, size)
        upload = await self.abegin(
            name=name,
            owner=owner,
            content_type=content_type,
            size=size,
            max_size=max_size,
            allowed_types=allowed_types,
            tags=tags,
            metadata=metadata,
        )
        async with upload:
            async for chunk in achunks(data):
                await upload.write(chunk)
            return await upload.finish()

    # -- reading ------------------------------------------------------------------------------------

    def stat(self, file_id: str) -> StoredFile:
        """The file ``file_id`` (``NotFoundError`` when there is none)."""
        self.ensure_schema()
        return self.runner.run(lambda: get_plan(_checked_id(file_id)), write=False)

    async def astat(self, file_id: str) -> StoredFile:
        """Async :meth:`stat`."""
        return await asyncio.to_thread(self.stat, file_id)

    def list(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        state: FileState | None = None,
        limit: int = 100,
        after: StoredFile | None = None,
    ) -> list[StoredFile]:
        """Files, newest first, filtered; pass the last one as ``after`` for the next page."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValidationError(f"limit must be 1..10000, got {limit!r}", field="limit")
        if state is not None and state not in ("stored", "archived"):
            raise ValidationError(f"state must be 'stored' or 'archived', got {state!r}", field="state")
        for name, value in (("owner", owner), ("tag", tag)):
            if value is not None and not isinstance(value, str):
                raise ValidationError(f"{name} must be a string, got {type(value).__name__}", field=name)
        if after is not None and not isinstance(after, StoredFile):
            raise ValidationError(
                "after must be the last StoredFile of the previous page, e.g. list(after=page[-1])",
                field="after",
            )
        self.ensure_schema()
        listing = Listing(
            owner=owner,
            tag=tag,
            state=state,
            limit=limit,
            after=None if after is None else (after.created_at, after.id),
        )
        return self.runner.run(lambda: list_plan(listing), write=False)

    async def alist(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        state: FileState | None = None,
        limit: int = 100,
        after: StoredFile | None = None,
    ) -> builtins.list[StoredFile]:
        """Async :meth:`list`."""
        return await asyncio.to_thread(
            lambda: self.list(owner=owner, tag=tag, state=state, limit=limit, after=after)
        )

    def _readable(self, file_id: str) -> StoredFile:
        found = self.stat(file_id)
        if found.state != "stored":
            raise ConflictError(
                f"file {found.id} is archived; restore it before reading it",
                error_code="file_archived",
                context={"file_id": found.id},
            )
        return found

    def stream(
        self, file_id: str, *, start: int = 0, end: int | None = None, chunk_size: int = 1024 * 1024
    ) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of a stored file, in chunks; records the read for retention."""
        found = self._readable(file_id)
        _check_range(start, end, chunk_size)
        try:
            body = self.blobs.read(found.key, start, end, chunk_size=chunk_size)
        except NotFoundError:
            raise _missing(found) from None
        self.runner.run(lambda: touch_plan(found.id, self.clock.time()))
        return body

    async def astream(
        self, file_id: str, *, start: int = 0, end: int | None = None, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """Async :meth:`stream`: each chunk is read in a worker thread."""
        body = await asyncio.to_thread(
            lambda: self.stream(file_id, start=start, end=end, chunk_size=chunk_size)
        )
        done = object()
        while (chunk := await asyncio.to_thread(next, body, done)) is not done:
            yield chunk  # type: ignore[misc]

    def open(self, file_id: str, *, start: int = 0, end: int | None = None) -> io.BufferedReader:
        """A stored file as a read-only binary file (close it, or use ``with``); reads pull from the store."""
        return io.BufferedReader(
            ChunkReader(self.stream(file_id, start=start, end=end)), buffer_size=1024 * 1024
        )

    def read_bytes(self, file_id: str) -> bytes:
        """A stored file's whole content (for small files; stream big ones)."""
        return b"".join(self.stream(file_id))

    async def aread_bytes(self, file_id: str) -> bytes:
        """Async :meth:`read_bytes`."""
        return await asyncio.to_thread(self.read_bytes, file_id)

    def presign(self, file_id: str, *, expires: float = 3600.0) -> str | None:
        """A time-limited download URL (S3), or None where the store has none (local disk)."""
        if not isinstance(expires, int | float) or isinstance(expires, bool) or not 1 <= expires <= 7 * 86400:
            raise ValidationError(f"expires must be 1..604800 seconds, got {expires!r}", field="expires")
        found = self._readable(file_id)
        return self.blobs.presign(
            found.key, expires=expires, filename=found.name, content_type=found.content_type
        )

    async def apresign(self, file_id: str, *, expires: float = 3600.0) -> str | None:
        """Async :meth:`presign`."""
        return await asyncio.to_thread(lambda: self.presign(file_id, expires=expires))

    # -- changing -----------------------------------------------------------------------------------

    def delete(self, file_id: str) -> bool:
        """Remove a file (stored or archived), its bytes and its share of the quota; False if absent."""
        self.ensure_schema()
        gone = self.runner.run(lambda: delete_plan(_checked_id(file_id), postgres=self.postgres))
        if gone is None:
            return False
        if gone.state == "archived" and gone.archive_key is not None:
            self.archive_blobs.delete(gone.archive_key)
        else:
            self.blobs.delete(gone.key)
        self.telemetry.cleaned("deleted")
        self.telemetry.announce("files.deleted", gone)
        return True

    async def adelete(self, file_id: str) -> bool:
        """Async :meth:`delete`."""
        return await asyncio.to_thread(self.delete, file_id)

    def archive(self, file_id: str, *, compress: bool | None = None) -> StoredFile:
        """Move a stored file's bytes to the archive (gzipped unless ``compress=False``); returns it."""
        if compress is not None and not isinstance(compress, bool):
            raise ValidationError(f"compress must be True, False or None, got {compress!r}", field="compress")
        found = self.stat(file_id)
        if found.state == "archived":
            return found
        packed = self.settings.archive_compress if compress is None else compress
        target = archive_key(found.id, packed)
        try:
            digest, _ = self._guarded_copy(
                self.blobs, found.key, self.archive_blobs, target, transform="gzip" if packed else None
            )
        except NotFoundError:
            raise _missing(found) from None
        if digest != found.sha256:
            self.archive_blobs.delete(target)
            raise ConflictError(
                f"file {found.id} no longer matches its sha256; it was not archived",
                error_code="file_corrupt",
                context={"file_id": found.id},
            )
        try:
            marked = self.runner.run(lambda: archived_plan(found.id, target, packed, self.clock.time()))
        except BaseException:
            self.archive_blobs.delete(target)  # no row will name this copy
            raise
        if not marked:
            self.archive_blobs.delete(target)  # deleted or archived meanwhile by another process
            return self.stat(file_id)
        self.blobs.delete(found.key)
        archived = self.stat(file_id)
        self.telemetry.cleaned("archived")
        self.telemetry.announce("files.archived", archived)
        return archived

    async def aarchive(self, file_id: str, *, compress: bool | None = None) -> StoredFile:
        """Async :meth:`archive`."""
        return await asyncio.to_thread(lambda: self.archive(file_id, compress=compress))

    def restore(self, file_id: str) -> StoredFile:
        """Bring an archived file back (its sha256 checked); returns it."""
        found = self.stat(file_id)
        if found.state == "stored" or found.archive_key is None:
            return found
        self.blobs.delete(found.key)  # what a crashed restore left: the row says no stored copy is live
        try:
            digest, _ = self._guarded_copy(
                self.archive_blobs,
                found.archive_key,
                self.blobs,
                found.key,
                transform="gunzip" if found.compressed else None,
            )
        except NotFoundError:
            raise _missing(found) from None
        if digest != found.sha256:
            self.blobs.delete(found.key)
            raise ConflictError(
                f"the archived copy of file {found.id} does not match its sha256; it was not restored",
                error_code="file_corrupt",
                context={"file_id": found.id},
            )
        if not self.runner.run(lambda: restored_plan(found.id, self.clock.time())):
            self.blobs.delete(found.key)
            return self.stat(file_id)
        self.archive_blobs.delete(found.archive_key)
        restored = self.stat(file_id)
        self.telemetry.cleaned("restored")
        self.telemetry.announce("files.restored", restored)
        return restored

    async def arestore(self, file_id: str) -> StoredFile:
        """Async :meth:`restore`."""
        return await asyncio.to_thread(self.restore, file_id)

    def _guarded_copy(
        self,
        source: BlobStore,
        source_key: str,
        target: BlobStore,
        target_key: str,
        *,
        transform: Literal["gzip", "gunzip", None] = None,
    ) -> tuple[str, int]:
        """Copy between blob stores under a guard row (see ``guard_plan``); the sha256 and size copied."""
        writer = target.writer(target_key)
        guard = self._copy_guard(target_key, writer.temp)
        try:
            self.runner.run(lambda: guard_plan([guard]))
        except BaseException:
            writer.abort()
            raise
        try:
            return copy_blob(source, source_key, writer, transform=transform)
        finally:
            with contextlib.suppress(ButtressError):  # a guard left behind expires and is swept
                self.runner.run(lambda: unguard_plan([guard.id]))

    def _copy_guard(self, key: str, temp: str | None = None) -> NewReservation:
        """The guard row of a copy to ``key`` (see ``guard_plan``): owned by this process, long-lived."""
        now = self.clock.time()
        return NewReservation(
            id=uuid.uuid4().hex,
            owner=None,
            bytes=0,
            temp=temp,
            key=key,
            host=_HOST,
            pid=os.getpid(),
            now=now,
            expires_at=now + max(_COPY_GUARD, self.settings.reservation_ttl),
        )

    # -- quotas, stats, upkeep ----------------------------------------------------------------------

    def set_quota(self, owner: str, quota: int | None) -> None:
        """Give ``owner`` a quota of its own in bytes (None: back to ``files.owner_quota``)."""
        if not isinstance(owner, str) or not owner:
            raise ValidationError(f"owner must be a non-empty string, got {owner!r}", field="owner")
        if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int) or quota <= 0):
            raise ValidationError(
                f"quota must be a positive number of bytes or None, got {quota!r}", field="quota"
            )
        self.ensure_schema()
        self.runner.run(lambda: set_quota_plan(f"owner:{owner}", quota))

    def usage(self, owner: str | None = None) -> ScopeUsage:
        """The counters and quota of ``owner`` (None: the whole store)."""
        self.ensure_schema()
        owners = None if owner is None else [owner]
        found = self.runner.run(lambda: usage_plan(self.limits, owners or []), write=False)
        return found[-1]

    async def aset_quota(self, owner: str, quota: int | None) -> None:
        """Async :meth:`set_quota`."""
        await asyncio.to_thread(self.set_quota, owner, quota)

    async def ausage(self, owner: str | None = None) -> ScopeUsage:
        """Async :meth:`usage`."""
        return await asyncio.to_thread(self.usage, owner)

    def stats(self) -> StorageStats:
        """Totals by state, quota use per scope, saves in flight, and where the bytes live."""
        self.ensure_schema()
        stats = self.runner.run(lambda: stats_plan(self.limits), write=False)
        whole = stats.usage[0]
        self.telemetry.totals(whole.used, whole.files, whole.quota)
        return stats.located(self.blobs, self.archive_blobs)

    async def astats(self) -> StorageStats:
        """Async :meth:`stats`."""
        return await asyncio.to_thread(self.stats)

    def sweep(self) -> SweepReport:
        """Reclaim what crashed saves left: expired reservations, their temp data and orphaned bytes."""
        self.ensure_schema()
        report = sweep(self, _HOST)
        self.telemetry.cleaned("reservations", report.reservations)
        self.telemetry.cleaned("leftovers", report.leftovers)
        return report

    async def asweep(self) -> SweepReport:
        """Async :meth:`sweep`."""
        return await asyncio.to_thread(self.sweep)

    def cleanup(
        self, *, dry_run: bool = False, rules: Sequence[Retention] | None = None, limit: int | None = None
    ) -> CleanupReport:
        """Sweep, then apply the retention rules (default: ``retention``); ``dry_run`` only lists them."""
        chosen = self.retention if rules is None else rules
        return cleanup(self, chosen, dry_run=dry_run, limit=limit)

    async def acleanup(
        self, *, dry_run: bool = False, rules: Sequence[Retention] | None = None, limit: int | None = None
    ) -> CleanupReport:
        """Async :meth:`cleanup`."""
        return await asyncio.to_thread(lambda: self.cleanup(dry_run=dry_run, rules=rules, limit=limit))

    def close(self) -> None:
        """Nothing of its own to close; the database belongs to whoever made it."""


def _described(
    data: object, name: str | None, content_type: str | None, size: int | None
) -> tuple[str | None, str | None, int | None]:
    """The name, declared type and size a save goes by: the caller's, else what ``data`` tells."""
    hinted_name, hinted_type = upload_file_hints(data)
    if size is None and isinstance(data, bytes | bytearray | memoryview):
        size = len(data)
    return (
        name if name is not None else hinted_name,
        content_type if content_type is not None else hinted_type,
        size,
    )


def _missing(found: StoredFile) -> ConflictError:
    return ConflictError(
        f"the bytes of file {found.id} are missing from the store (removed outside buttress); "
        "delete the file or restore its bytes",
        error_code="file_corrupt",
        context={"file_id": found.id},
    )


def _check_range(start: object, end: object, chunk_size: object) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValidationError(f"{name} must be a byte offset (an int >= 0), got {value!r}", field=name)
    if start is None:
        raise ValidationError("start must be a byte offset (an int >= 0), got None", field="start")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValidationError(f"chunk_size must be a positive int, got {chunk_size!r}", field="chunk_size")


def _checked_id(file_id: object) -> str:
    if (
        not isinstance(file_id, str)
        or len(file_id) != 32
        or not all(c in "0123456789abcdef" for c in file_id)
    ):
        raise ValidationError(f"file_id must be a file's 32-hex id, got {file_id!r}", field="file_id")
    return file_id
