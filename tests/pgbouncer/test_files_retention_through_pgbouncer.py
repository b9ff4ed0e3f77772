"""The files retention tests, their catalog database reached through PgBouncer."""

from __future__ import annotations

from tests.files import test_retention as suite
from tests.pgbouncer._borrow import borrow
from tests.pgbouncer._files import clock, files_db, files_url, make_store, store

__all__ = ["clock", "files_db", "files_url", "make_store", "store"]

globals().update(borrow(suite, {"store", "make_store", "files_db"}))
