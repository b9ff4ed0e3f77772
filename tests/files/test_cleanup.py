"""Cleanups on SQLite and PostgreSQL: rules applied, dry runs equal to real runs, races counted apart."""

from __future__ import annotations

import asyncio
import gzip
import inspect
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text

from buttress.clock import FakeClock
from buttress.config import FilesSettings
from buttress.db import Database
from buttress.errors import ValidationError
from buttress.files import FileStore, LocalBlobStore, StoredFile
from buttress.files._cleanup import CleanupReport
from buttress.files._retention import Retention
from buttress.observe.metrics import MetricsRegistry
from tests.files.conftest import leftover_bytes

DAY = 86400.0
TEXT = b"show notes, line after line\n" * 40


def _snapshot(store: FileStore, root: Path) -> tuple[object, ...]:
    """Everything a cleanup could change: rows, counters, reservations and the bytes on disk."""
    with store.db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, state, archive_key, accessed_at FROM buttress_files ORDER BY id")
        ).all()
        usage = connection.execute(text("SELECT * FROM buttress_file_usage ORDER BY scope")).all()
        held = connection.execute(text("SELECT id FROM buttress_file_reservations")).all()
    disk = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    return rows, usage, held, disk


def _aged(store: FileStore, clock: FakeClock, ages: Sequence[float], **save: object) -> list[StoredFile]:
    """Files saved ``ages`` days before the clock's final reading (oldest first)."""
    made = []
    for index, (age, following) in enumerate(zip(ages, [*ages[1:], 0.0], strict=True)):
        made.append(store.save(TEXT + str(index).encode(), name=f"f{index}.txt", **save))  # type: ignore[arg-type]
        clock.advance((age - following) * DAY)
    return made


def test_an_age_rule_archives_old_files_and_leaves_young_ones(
    make_store: Callable[..., FileStore], clock: FakeClock, tmp_path: Path
) -> None:
    store = make_store()
    old, older, young = _aged(store, clock, [40, 35, 5])
    report = store.cleanup(rules=[Retention(max_age=30 * DAY)])
    assert (report.archived, report.deleted, report.purged, report.raced, report.errors) == (2, 0, 0, 0, 0)
    assert report.plan() == [(old.id, "archive", 0), (older.id, "archive", 0)]
    assert report.bytes_archived == old.size + older.size
    assert report.bytes_freed == 0
    assert {a.outcome for a in report.actions} == {"done"}
    assert [store.stat(f.id).state for f in (old, older, young)] == ["archived", "archived", "stored"]
    packed = tmp_path / "blobs" / str(store.stat(old.id).archive_key)
    assert gzip.decompress(packed.read_bytes()) == TEXT + b"0"
    assert not (tmp_path / "blobs" / old.key).exists()
    assert store.read_bytes(store.restore(old.id).id) == TEXT + b"0"  # an archive the store can restore
    assert store.cleanup(rules=[Retention(max_age=30 * DAY)]).archived == 1  # restored, still old


def test_delete_and_purge_rules_free_the_quota(
    make_store: Callable[..., FileStore], clock: FakeClock
) -> None:
    store = make_store()
    made = _aged(store, clock, [100, 95, 60, 2], owner="ana", tags=["tmp"])
    store.archive(made[0].id)
    store.archive(made[1].id)
    rules = [
        Retention(action="delete", state="archived", max_age=90 * DAY),
        Retention(action="delete", max_age=30 * DAY, tag="tmp"),
    ]
    report = store.cleanup(rules=rules)
    assert (report.purged, report.deleted, report.errors) == (2, 1, 0)
    assert report.bytes_freed == sum(f.size for f in made[:3])
    assert [f.id for f in store.list()] == [made[3].id]
    ana = store.usage("ana")
    assert (ana.used, ana.files) == (made[3].size, 1)
    assert (store.usage().used, store.usage().files) == (made[3].size, 1)


def test_a_dry_run_lists_exactly_what_the_real_run_does_and_changes_nothing(
    make_store: Callable[..., FileStore], clock: FakeClock, tmp_path: Path
) -> None:
    store = make_store(quota=40_000)
    made = _aged(store, clock, [200, 120, 100, 45, 40, 31, 20, 10, 3, 1], owner="bo")
    tagged = store.save(b"scratch\n" * 100, name="scratch.txt", tags=["tmp"])
    store.archive(made[0].id)
    store.archive(made[1].id)
    clock.advance(2 * DAY)
    store.read_bytes(made[6].id)
    up = store.begin(name="crashed.bin", size=7)
    up.write(b"partial")
    clock.advance(store.settings.reservation_ttl + 1)  # the save above is abandoned: the sweep takes it
    rules = [
        Retention(max_age=90 * DAY),  # archives made[2] (made[0..1] are archived already)
        Retention(action="delete", state="archived", max_age=150 * DAY),  # purges made[0]
        Retention(action="delete", idle=DAY, tag="tmp"),  # deletes the scratch file
        Retention(action="delete", high_water=0.2, low_water=0.15),  # then least recently read first
    ]
    before = _snapshot(store, tmp_path / "blobs")
    dry = store.cleanup(rules=rules, dry_run=True)
    assert _snapshot(store, tmp_path / "blobs") == before
    assert dry.dry_run
    assert {a.outcome for a in dry.actions} == {"planned"}
    assert (dry.sweep.reservations, dry.sweep.leftovers) == (1, 1)
    real = store.cleanup(rules=rules)
    assert real.plan() == dry.plan()
    assert (real.sweep.reservations, real.sweep.leftovers) == (1, 1)
    assert (real.archived, real.purged, real.deleted) == (dry.archived, dry.purged, dry.deleted)
    assert (real.bytes_freed, real.bytes_archived) == (dry.bytes_freed, dry.bytes_archived)
    assert real.errors == real.raced == 0
    chosen = {file_id: action for file_id, action, _ in real.plan()}
    assert chosen[made[2].id] == "archive"
    assert chosen[made[0].id] == "purge"
    assert chosen[tagged.id] == "delete"
    assert made[1].id not in chosen  # archived, but only 120 days old
    deleted = [file_id for file_id, action, rule in real.plan() if rule == 3]
    assert deleted == [made[i].id for i in (3, 4, 5, 7)]  # least recently read first; made[6] was read
    assert store.usage().used <= 0.15 * 40_000  # the pressure rule went down to its low-water mark
    assert store.usage().reserved == 0
    assert store.cleanup(rules=rules, dry_run=True).actions == ()  # nothing left to do


def test_one_action_per_file_per_run_the_first_rule_wins(
    make_store: Callable[..., FileStore], clock: FakeClock
) -> None:
    store = make_store()
    (old,) = _aged(store, clock, [100])
    rules = [Retention(max_age=30 * DAY), Retention(action="delete", state="archived", max_age=90 * DAY)]
    first = store.cleanup(rules=rules)
    assert first.plan() == [(old.id, "archive", 0)]
    second = store.cleanup(rules=rules)
    assert second.plan() == [(old.id, "purge", 1)]
    assert store.list() == []


def test_pressure_deletes_the_least_recently_read_until_under_the_low_water(
    make_store: Callable[..., FileStore], clock: FakeClock
) -> None:
    store = make_store(quota=10_000)
    made = []
    for i in range(9):
        made.append(store.save(bytes([65 + i]) * 1000, name=f"{i}.bin"))
        clock.advance(1)
    for index in (0, 1, 2):  # read the oldest three: they become the most recently read
        clock.advance(1)
        store.read_bytes(made[index].id)
    rule = Retention(action="delete", high_water=0.85, low_water=0.5)
    report = store.cleanup(rules=[rule])
    assert [a.file_id for a in report.actions] == [f.id for f in made[3:7]]  # 9000 -> 5000 bytes
    assert store.usage().used == 5000
    assert store.cleanup(rules=[rule]).actions == ()  # 50 % is under the high-water mark


def test_an_archive_rule_under_pressure_watches_the_stored_bytes(
    make_store: Callable[..., FileStore], clock: FakeClock
) -> None:
    store = make_store()
    made = []
    for i in range(6):
        made.append(store.save(bytes([65 + i]) * 1000, name=f"{i}.bin"))
        clock.advance(1)
    report = store.cleanup(rules=[Retention(action="archive", high_water=5000.0, low_water=2000.0)])
    assert [a.file_id for a in report.actions] == [f.id for f in made[:4]]  # 6000 -> 2000 stored bytes
    stats = store.stats()
    assert (stats.stored_bytes, stats.archived_bytes) == (2000, 4000)
    assert store.usage().used == 6000  # archiving frees the main store, not the quota


def test_the_limit_bounds_the_files_acted_on(make_store: Callable[..., FileStore], clock: FakeClock) -> None:
    store = make_store()
    _aged(store, clock, [9, 8, 7, 6, 5])
    rules = [Retention(action="delete", max_age=DAY)]
    dry = store.cleanup(rules=rules, dry_run=True, limit=3)
    real = store.cleanup(rules=rules, limit=3)
    assert len(real.actions) == real.deleted == 3
    assert real.plan() == dry.plan()
    assert len(store.list()) == 2


def test_a_file_whose_bytes_are_gone_is_an_error_and_the_rest_go_on(
    make_store: Callable[..., FileStore], clock: FakeClock, tmp_path: Path
) -> None:
    store = make_store()
    broken, fine = _aged(store, clock, [40, 35])
    (tmp_path / "blobs" / broken.key).unlink()
    report = store.cleanup(rules=[Retention(max_age=30 * DAY)])
    assert (report.archived, report.errors, report.raced) == (1, 1, 0)
    failed = report.actions[0]
    assert (failed.file_id, failed.outcome) == (broken.id, "error")
    assert "missing" in (failed.error or "")
    assert store.stat(broken.id).state == "stored"
    assert store.stat(fine.id).state == "archived"


def test_a_callers_mistake_is_refused_before_anything_is_swept(
    make_store: Callable[..., FileStore], clock: FakeClock
) -> None:
    store = make_store()
    up = store.begin(name="crashed.bin")
    up.write(b"partial")
    clock.advance(store.settings.reservation_ttl + 1)
    with pytest.raises(ValidationError) as not_rules:
        store.cleanup(rules="max_age=30d")  # type: ignore[arg-type]
    assert not_rules.value.context["field"] == "rules"
    with pytest.raises(ValidationError) as bad_limit:
        store.cleanup(rules=[], limit=0)
    assert bad_limit.value.context["field"] == "limit"
    with pytest.raises(ValidationError) as no_quota:
        store.cleanup(rules=[Retention(action="delete", high_water=0.9)])
    assert no_quota.value.context["field"] == "high_water"
    assert store.usage().reserved > 0  # still held: nothing ran
    assert store.cleanup().sweep.reservations == 1  # no rules: the sweep alone


def test_the_store_keeps_its_rules_and_counts_what_they_did(
    files_db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    metrics = MetricsRegistry()
    store = FileStore(
        LocalBlobStore(tmp_path / "blobs"),
        db=files_db,
        settings=FilesSettings(),
        clock=clock,
        metrics=metrics,
        retention=[Retention(max_age=30 * DAY), Retention(action="delete", state="archived", max_age=0)],
    )
    _aged(store, clock, [31, 32][::-1])
    assert store.cleanup().archived == 2
    assert asyncio.run(store.acleanup()).purged == 2
    rendered = metrics.render_prometheus().decode()
    assert 'buttress_files_cleanup_total{action="archived"} 2.0' in rendered
    assert 'buttress_files_cleanup_total{action="purged"} 2.0' in rendered


@pytest.mark.parametrize("action", ["delete", "archive"])
def test_two_concurrent_cleanups_never_double_act_and_report_no_errors(
    make_store: Callable[..., FileStore], clock: FakeClock, tmp_path: Path, action: str
) -> None:
    # Two stores on one database and one directory. Temp files carry real mtimes while the clock runs two
    # days ahead, so the TTL is longer than that: each run's sweep must not take the other's copies in flight.
    first, second = make_store(reservation_ttl=10 * DAY), make_store(reservation_ttl=10 * DAY)
    count = 600 if action == "delete" else 150
    made = [first.save(b"%d\n" % i * 50, name=f"{i}.txt", owner=f"o{i % 3}") for i in range(count)]
    clock.advance(2 * DAY)
    rules = [Retention(action=action, max_age=DAY)]  # type: ignore[arg-type]
    start = threading.Barrier(2)
    reports: list[CleanupReport] = []
    failures: list[BaseException] = []

    def run(store: FileStore) -> None:
        try:
            start.wait(timeout=30)
            reports.append(store.cleanup(rules=rules))
        except BaseException as exc:  # the test reports it below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(store,)) for store in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert len(reports) == 2
    assert sum(r.errors for r in reports) == 0
    done = Counter(a.file_id for r in reports for a in r.actions if a.outcome == "done")
    assert set(done) == {f.id for f in made}  # every file once ...
    assert set(done.values()) == {1}  # ... and only once
    assert sum(r.raced for r in reports) == sum(len(r.actions) for r in reports) - count
    if action == "delete":
        assert first.list() == []
        assert leftover_bytes(tmp_path / "blobs") == 0
        assert all(first.usage(f"o{i}").used == 0 for i in range(3))
        assert (first.usage().used, first.usage().files) == (0, 0)
    else:
        assert {f.state for f in first.list(limit=1000)} == {"archived"}
        assert len(list((tmp_path / "blobs").glob("archive/*/*.gz"))) == count
        assert not list((tmp_path / "blobs").glob("files/*/*"))
        assert first.usage().used == sum(f.size for f in made)


def test_cleanup_and_acleanup_take_the_same_parameters() -> None:
    sync, twin = inspect.signature(FileStore.cleanup), inspect.signature(FileStore.acleanup)
    assert list(sync.parameters.values()) == list(twin.parameters.values())
    assert inspect.iscoroutinefunction(FileStore.acleanup)


def test_a_dry_run_sweep_reports_what_the_real_sweep_then_reclaims(
    make_store: Callable[..., FileStore], clock: FakeClock, tmp_path: Path
) -> None:
    store = make_store()
    crashed = store.begin(name="published-not-recorded.bin", size=5)
    crashed.write(b"bytes")
    published = tmp_path / "blobs" / crashed.request.key  # as if the process died after publishing
    published.parent.mkdir(parents=True, exist_ok=True)
    published.write_bytes(b"bytes")
    stray = tmp_path / "blobs" / ".tmp" / f"{'0' * 32}.part"  # temp data no reservation names
    stray.write_bytes(b"stray")
    clock.advance(store.settings.reservation_ttl + 1)
    before = _snapshot(store, tmp_path / "blobs")
    dry = store.cleanup(dry_run=True).sweep
    assert _snapshot(store, tmp_path / "blobs") == before
    real = store.cleanup().sweep
    assert dry == real
    assert (real.reservations, real.leftovers, real.orphans, real.freed_bytes) == (1, 2, 1, 5)
    assert not published.exists()
    assert not stray.exists()
