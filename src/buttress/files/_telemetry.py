"""The files' metrics and events.

Metrics (labels bounded: reasons and actions are fixed sets):

- ``buttress_files_saved_total`` and ``buttress_files_saved_bytes_total``: files stored and their bytes;
- ``buttress_files_rejected_total{reason}``: saves refused (``too_large``, ``type``, ``quota``);
- ``buttress_files_cleanup_total{action}``: what upkeep did (``archived``, ``deleted``, ``purged``,
  ``restored``, ``leftovers``, ``reservations``);
- ``buttress_files_stored_bytes`` / ``buttress_files_stored_files`` and
  ``buttress_files_quota_bytes``: the store's totals and global quota, refreshed by ``stats()``.

Events: ``files.stored``, ``files.archived``, ``files.restored`` and ``files.deleted``, each with
``{"file_id", "owner", "name", "size", "content_type"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from buttress.events import publish_quietly
from buttress.observe.metrics import get_metrics

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.files._info import StoredFile
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["FilesTelemetry"]

REASONS = ("too_large", "type", "quota")


class FilesTelemetry:
    """Counts saves, refusals and upkeep, and announces changes to files on the bus."""

    def __init__(self, metrics: MetricsRegistry | None = None, events: EventBus | None = None) -> None:
        registry = metrics or get_metrics()
        self.events = events
        self._saved = registry.counter("buttress_files_saved_total", "Files stored.")
        self._saved_bytes = registry.counter("buttress_files_saved_bytes_total", "Bytes of the files stored.")
        rejected = registry.counter(
            "buttress_files_rejected_total", "Saves refused, by reason.", labels=("reason",)
        )
        self._rejected = {reason: rejected.labels(reason=reason) for reason in REASONS}
        self._cleanup = registry.counter(
            "buttress_files_cleanup_total", "What file upkeep did, by action.", labels=("action",)
        )
        self._bytes = registry.gauge("buttress_files_stored_bytes", "Bytes of every file in the store.")
        self._files = registry.gauge("buttress_files_stored_files", "Files in the store.")
        self._quota = registry.gauge("buttress_files_quota_bytes", "The store's global quota (0: none).")

    def saved(self, stored: StoredFile) -> None:
        self._saved.inc()
        self._saved_bytes.inc(stored.size)
        self.announce("files.stored", stored)

    def rejected(self, reason: str) -> None:
        self._rejected[reason].inc()

    def cleaned(self, action: str, count: int = 1) -> None:
        if count:
            self._cleanup.labels(action=action).inc(count)

    def totals(self, used: int, files: int, quota: int | None) -> None:
        self._bytes.set(used)
        self._files.set(files)
        self._quota.set(quota or 0)

    def announce(self, topic: str, stored: StoredFile) -> None:
        payload = {
            "file_id": stored.id,
            "owner": stored.owner,
            "name": stored.name,
            "size": stored.size,
            "content_type": stored.content_type,
        }
        publish_quietly(self.events, topic, payload)
