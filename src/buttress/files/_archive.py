"""Moving bytes between blob stores, gzipped on the way to the archive and unzipped on the way back.

The copy streams chunk by chunk (no whole file in memory), hashes the original bytes as it goes, and
publishes the target only when the source was read to the end; the caller compares the hash with the
catalog's before it deletes the source, so a damaged copy never replaces a good file.
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from typing import Final, Literal

from buttress.files._blobs import BlobStore, BlobWriter

__all__ = ["ARCHIVE_PREFIX", "archive_key", "copy_blob"]

_GZIP: Final = 31  # zlib's wbits for a gzip container
ARCHIVE_PREFIX: Final = "archive/"


def archive_key(file_id: str, compressed: bool) -> str:
    """A new key for one archiving of ``file_id``: unique per attempt, so a crashed attempt's copy never
    blocks the next one (the sweeper removes it, as no row names it)."""
    suffix = uuid.uuid4().hex[:8]
    return f"{ARCHIVE_PREFIX}{file_id[:2]}/{file_id}-{suffix}" + (".gz" if compressed else "")


def copy_blob(
    source: BlobStore,
    source_key: str,
    writer: BlobWriter,
    *,
    transform: Literal["gzip", "gunzip", None] = None,
) -> tuple[str, int]:
    """Copy ``source_key`` through ``writer`` (opened on the target); the uncompressed sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    try:
        if transform == "gzip":
            packer = zlib.compressobj(6, zlib.DEFLATED, _GZIP)
            for chunk in source.read(source_key):
                digest.update(chunk)
                size += len(chunk)
                writer.write(packer.compress(chunk))
            writer.write(packer.flush())
        elif transform == "gunzip":
            unpacker = zlib.decompressobj(_GZIP)
            for chunk in source.read(source_key):
                plain = unpacker.decompress(chunk)
                digest.update(plain)
                size += len(plain)
                writer.write(plain)
            tail = unpacker.flush()
            digest.update(tail)
            size += len(tail)
            writer.write(tail)
        else:
            for chunk in source.read(source_key):
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return digest.hexdigest(), size
