"""What the file store counts and announces, and what it does when the database is away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from buttress.config import FilesSettings
from buttress.db import Database, PlanRunner
from buttress.errors import BackendUnavailable, FileTooLarge, FileTypeRejected, QuotaExceeded
from buttress.events import Event, EventBus
from buttress.files import FileStore, LocalBlobStore
from buttress.observe.metrics import MetricsRegistry
from tests.files.conftest import leftover_bytes


def value(metrics: MetricsRegistry, name: str, **labels: str) -> float | None:
    family = metrics.snapshot().get(name)
    for row in family["series"] if family else []:
        if row["labels"] == labels:
            return float(row["value"])
    return None


def test_saves_refusals_and_upkeep_are_counted_and_announced(files_db: Database, tmp_path: Path) -> None:
    metrics = MetricsRegistry()
    seen: list[Event] = []
    with EventBus() as bus:
        bus.subscribe("files.*", seen.append)
        store = FileStore(
            LocalBlobStore(tmp_path / "blobs"),
            db=files_db,
            settings=FilesSettings(quota=100_000),
            metrics=metrics,
            events=bus,
        )
        kept = store.save(b"hello\n" * 100, name="a.txt", owner="ana")
        with pytest.raises(FileTooLarge):
            store.save(b"x" * 2000, name="b.txt", max_size=1000)
        with pytest.raises(FileTypeRejected):
            store.save(b"\x7fELF" + bytes(60), name="c.png", allowed_types=["image/*"])
        with pytest.raises(QuotaExceeded):
            store.save(b"y" * 200_000, name="d.txt")
        store.archive(kept.id)
        store.restore(kept.id)
        store.delete(kept.id)
        bus.flush()
    assert value(metrics, "buttress_files_saved_total") == 1
    assert value(metrics, "buttress_files_saved_bytes_total") == 600
    for reason in ("too_large", "type", "quota"):
        assert value(metrics, "buttress_files_rejected_total", reason=reason) == 1, reason
    for action in ("archived", "restored", "deleted"):
        assert value(metrics, "buttress_files_cleanup_total", action=action) == 1, action
    assert [event.topic for event in seen] == [
        "files.stored",
        "files.archived",
        "files.restored",
        "files.deleted",
    ]
    payload: dict[str, Any] = dict(seen[0].payload)
    assert payload == {
        "file_id": kept.id,
        "owner": "ana",
        "name": "a.txt",
        "size": 600,
        "content_type": "text/plain",
    }


def test_stats_refresh_the_totals_gauges(files_db: Database, tmp_path: Path) -> None:
    metrics = MetricsRegistry()
    store = FileStore(
        LocalBlobStore(tmp_path / "blobs"), db=files_db, settings=FilesSettings(quota=1000), metrics=metrics
    )
    store.save(b"abc\n", name="a.txt")
    store.stats()
    assert value(metrics, "buttress_files_stored_bytes") == 4
    assert value(metrics, "buttress_files_stored_files") == 1
    assert value(metrics, "buttress_files_quota_bytes") == 1000


def test_an_unreachable_database_is_backend_unavailable_and_leaves_nothing(tmp_path: Path) -> None:
    db = Database("postgresql://nobody@127.0.0.1:9/none")
    store = FileStore(LocalBlobStore(tmp_path / "blobs"), db=db, settings=FilesSettings())
    with pytest.raises(BackendUnavailable):
        store.save(b"data\n", name="a.txt")
    assert leftover_bytes(tmp_path / "blobs") == 0
    db.close()


def test_a_database_lost_after_the_schema_check_aborts_the_save(files_db: Database, tmp_path: Path) -> None:
    store = FileStore(LocalBlobStore(tmp_path / "blobs"), db=files_db, settings=FilesSettings())
    store.ensure_schema()
    gone = Database("postgresql://nobody@127.0.0.1:9/none")
    store.runner = PlanRunner(gone)  # the database goes away after the store started
    try:
        with pytest.raises(BackendUnavailable):
            store.save(b"data\n", name="a.txt")
        assert leftover_bytes(tmp_path / "blobs") == 0
    finally:
        gone.close()
