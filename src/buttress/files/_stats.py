"""What ``FileStore.stats()``, ``/ops/storage/stats`` and ``buttress files stats`` report."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import text

from buttress.db import Plan, Step
from buttress.files._blobs import BlobStore
from buttress.files._catalog import ScopeUsage, usage_plan
from buttress.files._reservations import Limits

__all__ = ["StorageStats", "stats_plan"]


@dataclass(frozen=True, slots=True)
class StorageStats:
    """Files and bytes by state, quota use per scope (the store's first), and saves in flight."""

    stored_files: int
    stored_bytes: int
    archived_files: int
    archived_bytes: int
    in_flight: int
    usage: list[ScopeUsage]
    location: dict[str, str] = field(default_factory=dict)

    def located(self, blobs: BlobStore, archive: BlobStore) -> StorageStats:
        """The same figures, saying where the bytes and the archive live (no secrets)."""
        where = {"kind": blobs.kind, "files": blobs.location, "archive": archive.location}
        return replace(self, location=where)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the totals, ``quota`` (the store's scope) and ``owners`` (the rest)."""
        whole, *owners = self.usage
        return {
            "stored": {"files": self.stored_files, "bytes": self.stored_bytes},
            "archived": {"files": self.archived_files, "bytes": self.archived_bytes},
            "in_flight": self.in_flight,
            "quota": whole.to_dict(),
            "owners": [scope.to_dict() for scope in owners],
            "location": dict(self.location),
        }


def stats_plan(limits: Limits) -> Plan[StorageStats]:
    """Read the totals, the counters and the reservations in one transaction."""
    rows = yield Step(
        text("SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM buttress_files GROUP BY state"), rows=True
    )
    by_state = {row[0]: (int(row[1]), int(row[2])) for row in rows}
    flight = yield Step(text("SELECT COUNT(*) FROM buttress_file_reservations"), rows=True)
    usage = yield from usage_plan(limits)
    stored = by_state.get("stored", (0, 0))
    archived = by_state.get("archived", (0, 0))
    return StorageStats(stored[0], stored[1], archived[0], archived[1], int(flight[0][0]), usage)
