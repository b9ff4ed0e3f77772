"""Bytes in a directory: the embedded default :class:`BlobStore`.

A write goes to ``<root>/.tmp/<uuid>.part`` on the same filesystem, then is published with a hard link
(``os.link`` refuses an existing name, so nothing is ever overwritten) and the temp name removed. A
crash leaves only a ``.part`` file, which :meth:`LocalBlobStore.leftovers` lists for the sweeper.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Final

from buttress.errors import ConflictError, NotFoundError, ValidationError
from buttress.files._blobs import Leftover
from buttress.health_types import CheckResult
from buttress.resilience import StoreInfo

__all__ = ["LocalBlobStore"]

_TEMP: Final = ".tmp"


def check_key(key: str) -> PurePosixPath:
    """``key`` as a relative path of plain parts: no ``..``, no absolute path, no hidden part."""
    path = PurePosixPath(key)
    parts = path.parts
    if (
        not key
        or path.is_absolute()
        or "\\" in key
        or "\0" in key
        or any(part in ("", ".", "..") or part.startswith(".") for part in parts)
    ):
        raise ValidationError(
            f"key must be a relative path of plain parts (no '..', no leading '/', no hidden part), "
            f"got {key!r}; e.g. 'files/ab/abcdef'",
            field="key",
        )
    return path


class _LocalWriter:
    """A ``.part`` file under the store's temp directory, linked into place on commit."""

    def __init__(self, root: Path, key: str, *, fsync: bool) -> None:
        self._final = root / check_key(key)
        self.temp = f"{_TEMP}/{uuid.uuid4().hex}.part"
        self._path = root / self.temp
        self._fsync = fsync
        self._fd: int | None = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)

    def write(self, chunk: bytes) -> None:
        if self._fd is None:
            raise RuntimeError("write after commit or abort")
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def commit(self) -> None:
        if self._fd is None:
            raise RuntimeError("commit after commit or abort")
        try:
            if self._fsync:
                os.fsync(self._fd)
        finally:
            self._close()
        self._final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self._path, self._final)
        except FileNotFoundError:
            raise ConflictError(
                "the temp data of this write was removed (its save stalled past the reservation TTL "
                "and was swept); nothing was kept",
                context={"key": self._final.name},
            ) from None
        except FileExistsError:
            self.abort()
            raise ConflictError(
                f"an object already exists at key {self._final.name!r}; nothing was overwritten",
                context={"key": self._final.name},
            ) from None
        self._path.unlink(missing_ok=True)

    def abort(self) -> None:
        self._close()
        self._path.unlink(missing_ok=True)


class LocalBlobStore:
    """Objects as files under ``root`` (created if missing); ``fsync=True`` syncs each before publishing."""

    kind = "local"

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.root = Path(root).resolve()
        self.location = str(self.root)
        self._fsync = fsync
        (self.root / _TEMP).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<LocalBlobStore {self.location}>"

    def writer(self, key: str) -> _LocalWriter:
        """Start a write of ``key`` (published by ``commit``)."""
        return _LocalWriter(self.root, key, fsync=self._fsync)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def read(
        self, key: str, start: int = 0, end: int | None = None, *, chunk_size: int = 1024 * 1024
    ) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of ``key``, in chunks; the file is opened before the first chunk."""
        path = self._path(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise NotFoundError("file", key) from None
        size = os.fstat(handle.fileno()).st_size
        stop = size if end is None else end
        if start < 0 or stop > size or start > stop:
            handle.close()
            raise ValidationError(
                f"range must lie within the object's {size} bytes, got [{start}, {stop}); e.g. start=0",
                field="range",
            )
        return self._chunks(handle, start, stop, chunk_size)

    @staticmethod
    def _chunks(handle: BinaryIO, start: int, stop: int, chunk_size: int) -> Iterator[bytes]:
        with handle:
            handle.seek(start)
            left = stop - start
            while left > 0:
                chunk = handle.read(min(chunk_size, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    def size(self, key: str) -> int | None:
        """The object's length, or None when there is none."""
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when there was something to remove."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Published keys starting with ``prefix``, sorted (temp data never appears)."""
        found: list[str] = []
        for directory, subdirs, files in os.walk(self.root):
            subdirs[:] = [name for name in subdirs if not name.startswith(".")]
            base = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                key = name if base == "." else f"{base}/{name}"
                if key.startswith(prefix) and not name.startswith("."):
                    found.append(key)
        return iter(sorted(found))

    def leftovers(self) -> Iterator[Leftover]:
        """The ``.part`` files of writes that neither committed nor aborted."""
        found = []
        for entry in os.scandir(self.root / _TEMP):
            if entry.name.endswith(".part"):
                try:
                    started = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                found.append(Leftover(f"{_TEMP}/{entry.name}", started))
        return iter(sorted(found, key=lambda leftover: leftover.started_at))

    def remove_leftover(self, temp: str) -> None:
        """Remove one leftover (nothing when it is already gone)."""
        path = PurePosixPath(temp)
        if path.parent != PurePosixPath(_TEMP) or not path.name.endswith(".part") or ".." in path.parts:
            raise ValidationError(f"temp must name a .part file under {_TEMP}/, got {temp!r}", field="temp")
        (self.root / path).unlink(missing_ok=True)

    def presign(
        self, key: str, *, expires: float, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        """None: local files are served by the app, not by a signed URL."""
        return None

    def info(self) -> StoreInfo:
        """Kind ``local``, not shared across machines, the directory as detail."""
        available = self.check().status == "pass"
        return StoreInfo(kind=self.kind, shared=False, available=available, detail=self.location)

    def check(self) -> CheckResult:
        """``pass`` when the temp directory can take a write, ``fail`` saying why."""
        probe = self.root / _TEMP / f".probe-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            return CheckResult("fail", f"{self.location} cannot be written: {reason}")
        return CheckResult("pass", f"files in {self.location}")
