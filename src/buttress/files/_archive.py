"""Moving bytes between blob stores, gzipped on the way to the archive and unzipped on the way back.

The copy streams chunk by chunk (no whole file in memory), hashes the original bytes as it goes, and
publishes the target only when the source was read to the end; the caller compares the hash with the
catalog's before it deletes the source, so a damaged copy never replaces a good file.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Final, Literal

from buttress.files._blobs import BlobStore

__all__ = ["copy_blob"]

_GZIP: Final = 31  # zlib's wbits for a gzip container


def copy_blob(
    source: BlobStore,
    source_key: str,
    target: BlobStore,
    target_key: str,
    *,
    transform: Literal["gzip", "gunzip", None] = None,
) -> tuple[str, int]:
    """Copy ``source_key`` to ``target_key``; returns the sha256 and size of the uncompressed bytes."""
    digest = hashlib.sha256()
    size = 0
    writer = target.writer(target_key)
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
