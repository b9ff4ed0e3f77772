"""``files.url`` to a blob store: a directory, or ``s3://bucket/prefix``."""

from __future__ import annotations

from urllib.parse import urlsplit

from buttress.config import FilesSettings
from buttress.errors import ValidationError
from buttress.files._blobs import BlobStore
from buttress.files._local import LocalBlobStore
from buttress.files._s3 import S3BlobStore

__all__ = ["blob_store_for"]


def blob_store_for(url: str, settings: FilesSettings) -> BlobStore:
    """The blob store ``url`` names (``file://`` and plain paths are directories)."""
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValidationError(
                f"an S3 URL names a bucket, got {url!r}; e.g. s3://uploads/podcasts", field="url"
            )
        return S3BlobStore(
            parts.netloc,
            parts.path.strip("/"),
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            part_size=int(settings.part_size),
        )
    if "://" in url and not url.startswith("file://"):
        raise ValidationError(
            f"files.url must be a directory or s3://bucket/prefix, got {url.split('://', maxsplit=1)[0]}://...",
            field="url",
        )
    return LocalBlobStore(url.removeprefix("file://"))
