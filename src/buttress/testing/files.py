"""A file store for users' tests: a temporary directory and SQLite file, reached by ``get_files()``.

:func:`file_store` makes the process's :class:`~buttress.files.FileStore` (what ``get_files()`` and the
container resolve) a store under a temporary directory with its rows in a temporary SQLite file, so a
test saves and reads files as the app does and nothing touches the real store. Limits, quotas and
allowed types come from the process's settings (``BUTTRESS_FILES__*``) unless ``settings`` says
otherwise. The pytest fixture ``file_store`` (:mod:`buttress.testing.pytest_plugin`) wraps it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from buttress.config import FilesSettings, get_settings
from buttress.container import get_container
from buttress.db import Database
from buttress.files import FileStore, LocalBlobStore

__all__ = ["file_store"]


@contextmanager
def file_store(path: Path, *, settings: FilesSettings | None = None) -> Iterator[FileStore]:
    """A FileStore under ``path`` (``files/`` and ``files.db``), the container's while the block runs."""
    chosen = settings if settings is not None else get_settings().files
    db = Database(f"sqlite:///{path / 'files.db'}")
    try:
        store = FileStore(LocalBlobStore(path / "files"), db=db, settings=chosen)
        with get_container().override(FileStore, store):
            yield store
    finally:
        db.close()
