"""Where a file's bytes live: the :class:`BlobStore` contract and its value types.

A blob store keeps bytes under keys and knows nothing of owners, quotas or types (the catalog in the
database does). Both implementations, :class:`~buttress.files.LocalBlobStore` (a directory, the embedded
default) and :class:`~buttress.files.S3BlobStore`, pass one conformance suite. The contract is sync:
local disk and boto3 are blocking, so the async side of ``FileStore`` runs these calls in a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from buttress.health_types import CheckResult
from buttress.resilience import StoreInfo

__all__ = ["BlobStore", "BlobWriter", "Leftover"]


@dataclass(frozen=True, slots=True)
class Leftover:
    """Temp data a write left behind: a ``.part`` file, or an incomplete multipart upload."""

    temp: str
    started_at: float


class BlobWriter(Protocol):
    """One object being written, chunk by chunk, published whole or not at all.

    ``temp`` names the temp data before anything is written (the catalog records it, so a sweeper can
    remove what a crash left). ``write`` appends; ``commit`` publishes under the key the writer was opened
    for, atomically (rename; multipart complete), and raises ``ConflictError`` if that key already holds
    an object: nothing is ever overwritten. ``abort`` removes the temp data; it is idempotent and safe
    after a failed ``write`` or ``commit``.
    """

    temp: str

    def write(self, chunk: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class BlobStore(Protocol):
    """The contract of a blob store.

    ``writer(key)`` starts a write (see :class:`BlobWriter`). ``read(key, start, end)`` yields the bytes
    ``[start, end)`` (``end=None``: to the end) in chunks of at most ``chunk_size``; it raises
    ``NotFoundError`` for a missing key and ``ValidationError`` for a range outside the object.
    ``size(key)`` is the object's length or None. ``delete(key)`` says whether something was removed.
    ``keys(prefix)`` lists published keys (never temp data). ``leftovers()`` lists temp data of writes
    that were neither committed nor aborted, ``remove_leftover(temp)`` removes one (a no-op when gone).
    ``presign(key, expires, ...)`` is a time-limited download URL, or None where the store has none
    (local disk: downloads go through the app). ``kind`` is ``local`` or ``s3``; ``location`` says where,
    with no secret in it. ``info()``/``check()`` as every backend: what it is, and whether it answers.
    A store that cannot be reached raises ``BackendUnavailable``: files are durable, nothing degrades.
    """

    kind: str
    location: str

    def writer(self, key: str) -> BlobWriter: ...
    def read(
        self, key: str, start: int = 0, end: int | None = None, *, chunk_size: int = 1024 * 1024
    ) -> Iterator[bytes]: ...
    def size(self, key: str) -> int | None: ...
    def delete(self, key: str) -> bool: ...
    def keys(self, prefix: str = "") -> Iterator[str]: ...
    def leftovers(self) -> Iterator[Leftover]: ...
    def remove_leftover(self, temp: str) -> None: ...
    def presign(
        self, key: str, *, expires: float, filename: str | None = None, content_type: str | None = None
    ) -> str | None: ...
    def info(self) -> StoreInfo: ...
    def check(self) -> CheckResult: ...
