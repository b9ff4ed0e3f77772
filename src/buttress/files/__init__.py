"""File lifecycle: streaming saves with limits, types by content, quotas shared across processes, archive.

``FileStore`` keeps bytes in a directory (the embedded default) or an S3 bucket and their rows and quota
counters in ``buttress.db``. ``Uploads``/``upload_route`` stream FastAPI uploads into a store (they need
the ``[server]`` extra and load on first use). See ``docs/files.md``.
"""

from typing import TYPE_CHECKING

from buttress._extras import require
from buttress._lazy import lazy_exports

for _package in ("filetype", "sqlalchemy", "cronsim"):  # libmagic is optional: filetype is the fallback
    require(_package, "files", "buttress.files (file lifecycle)")

from buttress.files._blobs import BlobStore, BlobWriter, Leftover
from buttress.files._catalog import ScopeUsage
from buttress.files._cleanup import CleanupAction, CleanupReport
from buttress.files._cleanup_job import CleanupTask, cleanup_job, schedule_cleanup, scheduled_rules
from buttress.files._detect import HEAD_SIZE, TypeDetector
from buttress.files._info import FileState, StoredFile
from buttress.files._local import LocalBlobStore
from buttress.files._names import safe_name
from buttress.files._provide import get_files, health_checks, register_services
from buttress.files._retention import Retention
from buttress.files._s3 import S3BlobStore
from buttress.files._stats import StorageStats
from buttress.files._store import FileStore
from buttress.files._sweep import SweepReport
from buttress.files._upload import AsyncUpload, Upload

if TYPE_CHECKING:  # the FastAPI helper needs the [server] extra: loaded on first use
    from buttress.files._fastapi import Uploaded, Uploads, upload_route

__getattr__, __dir__ = lazy_exports(
    __name__, dict.fromkeys(["Uploaded", "Uploads", "upload_route"], "buttress.files._fastapi")
)

__all__ = [
    "HEAD_SIZE",
    "AsyncUpload",
    "BlobStore",
    "BlobWriter",
    "CleanupAction",
    "CleanupReport",
    "CleanupTask",
    "FileState",
    "FileStore",
    "Leftover",
    "LocalBlobStore",
    "Retention",
    "S3BlobStore",
    "ScopeUsage",
    "StorageStats",
    "StoredFile",
    "SweepReport",
    "TypeDetector",
    "Upload",
    "Uploaded",
    "Uploads",
    "cleanup_job",
    "get_files",
    "health_checks",
    "register_services",
    "safe_name",
    "schedule_cleanup",
    "scheduled_rules",
    "upload_route",
]
