"""File lifecycle: streaming saves with limits, types by content, quotas, retention; local disk and S3."""

from buttress.files._blobs import BlobStore, BlobWriter, Leftover
from buttress.files._local import LocalBlobStore

__all__ = ["BlobStore", "BlobWriter", "Leftover", "LocalBlobStore"]
