"""The files quota tests, their catalog database reached through PgBouncer."""

from __future__ import annotations

from tests.files import test_quota as suite
from tests.pgbouncer._borrow import borrow
from tests.pgbouncer._files import clock, files_db, files_url, make_store, store

__all__ = ["clock", "files_db", "files_url", "make_store", "store"]

SPAWNED = "its processes open Database(url) with the default settings: a pooler URL needs db.pooler too"
LEFT_OUT = {
    "test_racing_processes_never_overshoot_a_shared_quota": SPAWNED,
    "test_a_save_killed_mid_write_leaves_nothing_after_the_next_sweep": SPAWNED,
}
globals().update(borrow(suite, {"store", "make_store", "files_db"}, LEFT_OUT))
