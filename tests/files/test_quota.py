"""Quotas: space reserved before bytes land, settled or released, shared by every process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from buttress.db import Database
from buttress.errors import QuotaExceeded
from buttress.files import FileStore, LocalBlobStore
from tests.files.conftest import leftover_bytes

KIB = 1024


def test_the_global_quota_refuses_a_save_that_would_pass_it_with_the_numbers(
    make_store: Callable[..., FileStore], tmp_path: Path
) -> None:
    store = make_store(quota=10 * KIB)
    store.save(b"a" * (6 * KIB), name="a.txt")
    with pytest.raises(QuotaExceeded) as caught:
        store.save(b"b" * (5 * KIB), name="b.txt")
    assert caught.value.status == 429  # it would fit once space is freed
    assert caught.value.context == {
        "scope": "*",
        "quota": 10 * KIB,
        "used": 6 * KIB,
        "reserved": 0,
        "requested": 5 * KIB,
    }
    assert "4096 of its 10240 bytes free" in str(caught.value)
    assert store.usage().reserved == 0
    assert len(list((tmp_path / "blobs").rglob("*.part"))) == 0


def test_a_file_larger_than_the_whole_quota_is_a_413(make_store: Callable[..., FileStore]) -> None:
    store = make_store(quota=10 * KIB)
    with pytest.raises(QuotaExceeded, match="can never fit") as caught:
        store.save(b"a" * (11 * KIB), name="a.txt")
    assert caught.value.status == 413


def test_a_body_of_unknown_length_is_stopped_when_its_reservation_cannot_grow(
    make_store: Callable[..., FileStore], tmp_path: Path
) -> None:
    store = make_store(quota=20 * 1024 * KIB)  # 20 MiB: reserved 8, then 16; near the quota, 1 MiB at a time
    chunk = b"z" * (1024 * KIB)
    written: list[int] = []

    def body() -> Iterator[bytes]:
        for _ in range(30):
            written.append(1)
            yield chunk

    with pytest.raises(QuotaExceeded):
        store.save(body(), name="big.bin")
    assert len(written) == 21  # every MiB of the quota was usable; the 21st was refused before it was stored
    assert leftover_bytes(tmp_path / "blobs") == 0
    usage = store.usage()
    assert (usage.used, usage.reserved) == (0, 0)


def test_owner_quotas_are_separate_and_can_be_set_per_owner(make_store: Callable[..., FileStore]) -> None:
    store = make_store(owner_quota=4 * KIB)
    store.save(b"a" * (3 * KIB), name="a.txt", owner="ana")
    store.save(b"b" * (3 * KIB), name="b.txt", owner="bo")
    with pytest.raises(QuotaExceeded) as caught:
        store.save(b"c" * (2 * KIB), name="c.txt", owner="ana")
    assert caught.value.context["scope"] == "owner:ana"
    store.set_quota("ana", 8 * KIB)
    store.save(b"c" * (2 * KIB), name="c.txt", owner="ana")
    assert store.usage("ana").used == 5 * KIB
    assert store.usage("ana").quota == 8 * KIB
    store.set_quota("ana", None)
    assert store.usage("ana").quota == 4 * KIB
    assert store.save(b"x" * KIB, name="free.txt").owner is None  # no owner: only the global scope


def test_deleting_gives_the_space_back(make_store: Callable[..., FileStore]) -> None:
    store = make_store(quota=10 * KIB)
    first = store.save(b"a" * (8 * KIB), name="a.txt")
    store.delete(first.id)
    assert store.save(b"b" * (8 * KIB), name="b.txt").size == 8 * KIB


RACER = textwrap.dedent(
    """
    import json, sys
    from buttress.config import FilesSettings
    from buttress.db import Database
    from buttress.errors import QuotaExceeded
    from buttress.files import FileStore, LocalBlobStore

    url, root = sys.argv[1], sys.argv[2]
    quota, count, size = (int(argument) for argument in sys.argv[3:6])
    store = FileStore(LocalBlobStore(root), db=Database(url), settings=FilesSettings(quota=quota))
    stored = refused = 0
    print("ready", flush=True)
    sys.stdin.readline()
    for index in range(count):
        try:
            store.save(b"q" * size, name=f"{index}.txt")
            stored += 1
        except QuotaExceeded:
            refused += 1
    print(json.dumps({"stored": stored, "refused": refused}), flush=True)
    """
)


def test_racing_processes_never_overshoot_a_shared_quota(files_db: Database, tmp_path: Path) -> None:
    """4 processes x 50 saves of 1 KiB against a 120 KiB quota: exactly 120 stored, the rest refused."""
    url = files_db.urls.sync.render_as_string(hide_password=False)
    root = tmp_path / "blobs"
    LocalBlobStore(root)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, str(root), str(120 * KIB), "50", str(KIB)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for racer in racers:
        assert racer.stdout is not None
        assert racer.stdout.readline().strip() == "ready"
    for racer in racers:  # released together
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    results = [json.loads(racer.communicate(timeout=120)[0].strip().splitlines()[-1]) for racer in racers]
    assert sum(result["stored"] for result in results) == 120
    assert sum(result["refused"] for result in results) == 80
    with files_db.engine.connect() as connection:
        used, reserved, files = connection.execute(
            text("SELECT used, reserved, files FROM buttress_file_usage WHERE scope = '*'")
        ).one()
        on_disk = connection.execute(text("SELECT COALESCE(SUM(size), 0) FROM buttress_files")).scalar()
    assert (used, reserved, files, on_disk) == (120 * KIB, 0, 120, 120 * KIB)
    assert leftover_bytes(root) == 120 * KIB


WRITER = textwrap.dedent(
    """
    import sys
    from buttress.config import FilesSettings
    from buttress.db import Database
    from buttress.files import FileStore, LocalBlobStore

    store = FileStore(LocalBlobStore(sys.argv[2]), db=Database(sys.argv[1]), settings=FilesSettings())
    upload = store.begin(name="half.bin")
    for _ in range(20):
        upload.write(b"k" * 65536)
    print("written", flush=True)
    sys.stdin.readline()  # killed here, mid-write
    """
)


def test_a_save_killed_mid_write_leaves_nothing_after_the_next_sweep(
    make_store: Callable[..., FileStore], files_db: Database, tmp_path: Path
) -> None:
    url = files_db.urls.sync.render_as_string(hide_password=False)
    root = tmp_path / "blobs"
    LocalBlobStore(root)
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "written"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert 0 < leftover_bytes(root) <= 20 * 65536  # the .part file the killed save left (its writer thread
    # may not have written the last queued chunks when the kill came)
    store = make_store()
    assert store.usage().reserved > 0
    report = store.sweep()  # what the next start runs: the owner process is gone, so no TTL wait
    assert (report.reservations, report.leftovers, report.orphans) == (1, 1, 0)
    assert leftover_bytes(root) == 0
    assert store.usage().reserved == 0
    assert store.sweep().reservations == 0  # a second sweep finds nothing


def test_a_live_save_is_left_alone_by_the_sweeper_until_its_reservation_expires(
    store: FileStore, clock: object, tmp_path: Path
) -> None:
    upload = store.begin(name="slow.bin")
    upload.write(b"s" * 10_000)
    assert store.sweep().reservations == 0
    assert not upload.closed
    clock.advance(store.settings.reservation_ttl + 1)  # type: ignore[attr-defined]
    report = store.sweep()
    assert (report.reservations, report.leftovers) == (1, 1)
    assert leftover_bytes(tmp_path / "blobs") == 0


def test_an_owner_with_less_free_space_than_a_reservation_step_can_still_save(
    make_store: Callable[..., FileStore],
) -> None:
    """A body of unknown length reserves 8 MiB ahead; with less free, its chunks reserve what they need."""
    store = make_store()
    store.set_quota("bob", 1_000)
    upload = store.begin(owner="bob", name="hello.txt")
    upload.write(b"hello\n")
    assert upload.finish().size == 6
    with pytest.raises(QuotaExceeded) as caught:
        store.save(iter([b"x" * 600, b"y" * 600]), owner="bob", name="big.txt")
    assert caught.value.status == 429  # it would fit once bob frees space: not "never"
    assert caught.value.context["requested"] == 600
    assert store.usage("bob").used == 6
