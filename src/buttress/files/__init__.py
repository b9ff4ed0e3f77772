"""File lifecycle: streaming saves with limits, types by content, quotas shared across processes, archive.

``FileStore`` keeps bytes in a directory (the embedded default) or an S3 bucket and their rows and quota
counters in ``buttress.db``. See ``docs/files.md``.
"""

from buttress._extras import require

for _package in ("magic", "filetype", "sqlalchemy", "cronsim"):
    require(_package, "files", "buttress.files (file lifecycle)")

from buttress.files._blobs import BlobStore, BlobWriter, Leftover
from buttress.files._catalog import ScopeUsage
from buttress.files._detect import HEAD_SIZE, TypeDetector
from buttress.files._info import FileState, StoredFile
from buttress.files._local import LocalBlobStore
from buttress.files._names import safe_name
from buttress.files._provide import get_files, health_checks, register_services
from buttress.files._stats import StorageStats
from buttress.files._store import FileStore
from buttress.files._sweep import SweepReport
from buttress.files._upload import AsyncUpload, Upload

__all__ = [
    "HEAD_SIZE",
    "AsyncUpload",
    "BlobStore",
    "BlobWriter",
    "FileState",
    "FileStore",
    "Leftover",
    "LocalBlobStore",
    "ScopeUsage",
    "StorageStats",
    "StoredFile",
    "SweepReport",
    "TypeDetector",
    "Upload",
    "get_files",
    "health_checks",
    "register_services",
    "safe_name",
]
