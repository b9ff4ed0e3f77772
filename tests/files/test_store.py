"""FileStore on local disk over SQLite and PostgreSQL: saving, reading, limits, types, archive, delete."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from buttress.errors import ConflictError, FileTooLarge, FileTypeRejected, NotFoundError, ValidationError
from buttress.files import FileStore, StoredFile
from tests.files.conftest import leftover_bytes

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + b"\x00" * 200
TEXT = b"episode notes\n" * 2000


def pieces(data: bytes, size: int = 4096) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def test_a_saved_file_reads_back_with_its_hash_size_and_type(store: FileStore, tmp_path: Path) -> None:
    saved = store.save(TEXT, name="../../etc/Notes.txt", owner="ana", tags=["show"], metadata={"ep": "3"})
    assert saved.size == len(TEXT)
    assert saved.sha256 == hashlib.sha256(TEXT).hexdigest()
    assert saved.content_type == "text/plain"
    assert saved.name == "Notes.txt"  # the path is gone, only the base name is kept as metadata
    assert saved.key == f"files/{saved.id[:2]}/{saved.id}"
    assert (saved.tags, dict(saved.metadata), saved.state) == (("show",), {"ep": "3"}, "stored")
    assert store.read_bytes(saved.id) == TEXT
    assert store.stat(saved.id) == saved
    assert b"".join(store.stream(saved.id, start=5, end=12)) == TEXT[5:12]
    assert (tmp_path / "blobs" / saved.key).read_bytes() == TEXT
    assert not list((tmp_path / "blobs" / ".tmp").iterdir())


def test_every_kind_of_source_is_streamed(store: FileStore) -> None:
    from_iterator = store.save(pieces(TEXT), name="a.txt")
    from_file = store.save(io.BytesIO(TEXT), name="b.txt")
    from_bytearray = store.save(bytearray(TEXT), name="c.txt")
    assert {from_iterator.sha256, from_file.sha256, from_bytearray.sha256} == {
        hashlib.sha256(TEXT).hexdigest()
    }


def test_the_async_save_takes_an_async_iterator(store: FileStore) -> None:
    async def body() -> AsyncIterator[bytes]:
        for chunk in pieces(TEXT, 1000):
            yield chunk

    async def run() -> tuple[StoredFile, bytes]:
        saved = await store.asave(body(), name="notes.txt")
        read = b"".join([chunk async for chunk in store.astream(saved.id)])
        return saved, read

    saved, read = asyncio.run(run())
    assert read == TEXT
    assert saved.size == len(TEXT)


def test_two_saves_of_one_name_never_overwrite_each_other(store: FileStore) -> None:
    first = store.save(b"first version\n", name="same.txt")
    second = store.save(b"second version\n", name="same.txt")
    assert first.id != second.id
    assert first.key != second.key
    assert store.read_bytes(first.id) == b"first version\n"
    assert store.read_bytes(second.id) == b"second version\n"


def test_a_declared_length_over_the_limit_is_refused_before_anything_is_written(
    store: FileStore, tmp_path: Path
) -> None:
    consumed: list[bytes] = []

    def body() -> Iterator[bytes]:
        consumed.append(b"x")
        yield b"x" * 10

    with pytest.raises(FileTooLarge) as caught:
        store.save(body(), name="big.bin", size=10_000, max_size=1000)
    assert caught.value.status == 413
    assert consumed == []
    assert leftover_bytes(tmp_path / "blobs") == 0
    assert store.usage().reserved == 0


def test_a_body_that_grows_past_the_limit_is_cut_and_nothing_is_kept(
    store: FileStore, tmp_path: Path
) -> None:
    sent: list[int] = []

    def endless() -> Iterator[bytes]:
        while True:
            sent.append(1)
            yield b"a" * 1000

    with pytest.raises(FileTooLarge) as caught:
        store.save(endless(), name="endless.txt", max_size=10_000)
    assert len(sent) == 11  # the chunk that crossed the limit was the last one read
    assert caught.value.context == {"limit": 10_000, "seen": 11_000}
    assert leftover_bytes(tmp_path / "blobs") == 0
    usage = store.usage()
    assert (usage.used, usage.reserved, usage.files) == (0, 0, 0)
    assert store.list() == []


def test_a_body_exactly_at_the_limit_is_kept(store: FileStore) -> None:
    assert store.save(b"b" * 1000, name="edge.txt", max_size=1000).size == 1000


def test_a_rejected_type_leaves_nothing(store: FileStore, tmp_path: Path) -> None:
    with pytest.raises(FileTypeRejected):
        store.save(ELF, name="holiday.jpg", allowed_types=["image/*"])
    assert leftover_bytes(tmp_path / "blobs") == 0
    assert store.usage().reserved == 0


def test_the_type_is_checked_before_the_first_bytes_reach_the_store(store: FileStore, tmp_path: Path) -> None:
    upload = store.begin(name="x.png", allowed_types=["image/png"])
    upload.write(b"\x7fELF" + b"\x00" * 4000)  # under 8 KiB: held back, nothing written yet
    part = next((tmp_path / "blobs" / ".tmp").iterdir())
    assert part.stat().st_size == 0
    with pytest.raises(FileTypeRejected):
        upload.write(b"\x00" * 5000)
    assert not part.exists()
    assert upload.closed


def test_a_png_is_accepted_by_an_image_allow_list(store: FileStore) -> None:
    saved = store.save(PNG, name="dot.png", allowed_types=["image/*"], content_type="image/png")
    assert saved.content_type == "image/png"


def test_a_declared_size_that_the_body_does_not_match_keeps_nothing(store: FileStore, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="declared") as caught:
        store.save(iter([b"short"]), name="a.txt", size=100)
    assert caught.value.field == "size"
    assert leftover_bytes(tmp_path / "blobs") == 0


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"name": 3}, "name"),
        ({"owner": ""}, "owner"),
        ({"max_size": 0}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"size": -1}, "size"),
        ({"tags": "show"}, "tags"),
        ({"metadata": {"n": 1}}, "metadata"),
        ({"allowed_types": "image/*"}, "allowed_types"),
    ],
)
def test_a_callers_mistake_is_named_before_anything_is_written(
    store: FileStore, tmp_path: Path, arguments: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        store.save(b"data", **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert leftover_bytes(tmp_path / "blobs") == 0


def test_text_is_refused_with_the_fix(store: FileStore) -> None:
    with pytest.raises(ValidationError, match=r"encode") as caught:
        store.save("some text")
    assert caught.value.field == "data"


@pytest.mark.parametrize("file_id", ["", "nope", "../" * 11, 42])
def test_a_malformed_id_is_refused(store: FileStore, file_id: object) -> None:
    with pytest.raises(ValidationError) as caught:
        store.stat(file_id)  # type: ignore[arg-type]
    assert caught.value.field == "file_id"


def test_a_missing_file_is_not_found(store: FileStore) -> None:
    with pytest.raises(NotFoundError):
        store.stat("0" * 32)
    assert store.delete("0" * 32) is False


def test_delete_removes_the_bytes_the_row_and_the_share_of_the_quota(
    store: FileStore, tmp_path: Path
) -> None:
    saved = store.save(TEXT, name="a.txt", owner="ana")
    assert store.usage("ana").used == len(TEXT)
    assert store.delete(saved.id) is True
    assert not (tmp_path / "blobs" / saved.key).exists()
    assert (store.usage("ana").used, store.usage().used, store.usage().files) == (0, 0, 0)
    with pytest.raises(NotFoundError):
        store.stat(saved.id)


def test_archive_gzips_and_restore_brings_back_the_same_bytes(store: FileStore, tmp_path: Path) -> None:
    saved = store.save(TEXT, name="a.txt")
    archived = store.archive(saved.id)
    assert (archived.state, archived.compressed) == ("archived", True)
    assert archived.archive_key is not None
    assert re.fullmatch(rf"archive/{saved.id[:2]}/{saved.id}-[0-9a-f]{{8}}\.gz", archived.archive_key)
    packed = (tmp_path / "blobs" / archived.archive_key).read_bytes()
    assert gzip.decompress(packed) == TEXT
    assert len(packed) < len(TEXT) / 10
    assert not (tmp_path / "blobs" / saved.key).exists()
    with pytest.raises(ConflictError) as caught:
        store.read_bytes(saved.id)
    assert caught.value.error_code == "file_archived"
    restored = store.restore(saved.id)
    assert (restored.state, restored.archive_key) == ("stored", None)
    assert store.read_bytes(saved.id) == TEXT
    assert not (tmp_path / "blobs" / archived.archive_key).exists()


def test_archive_without_compression_and_delete_of_an_archived_file(store: FileStore, tmp_path: Path) -> None:
    saved = store.save(TEXT, name="a.txt")
    archived = store.archive(saved.id, compress=False)
    assert archived.archive_key is not None
    assert (tmp_path / "blobs" / archived.archive_key).read_bytes() == TEXT
    assert store.delete(saved.id)
    assert leftover_bytes(tmp_path / "blobs") == 0


def test_a_damaged_file_is_not_archived(store: FileStore, tmp_path: Path) -> None:
    saved = store.save(TEXT, name="a.txt")
    (tmp_path / "blobs" / saved.key).write_bytes(b"bit rot")
    with pytest.raises(ConflictError) as caught:
        store.archive(saved.id)
    assert caught.value.error_code == "file_corrupt"
    assert store.stat(saved.id).state == "stored"
    assert not list((tmp_path / "blobs").glob("archive/**/*.gz"))


def test_list_filters_by_owner_tag_and_state_newest_first(store: FileStore, clock: object) -> None:
    made = []
    for index in range(5):
        made.append(
            store.save(
                b"n%d\n" % index,
                name=f"{index}.txt",
                owner="ana" if index % 2 else "bo",
                tags=["odd"] if index % 2 else [],
            )
        )
        clock.advance(1)  # type: ignore[attr-defined]
    assert [f.id for f in store.list()] == [f.id for f in reversed(made)]
    assert [f.name for f in store.list(owner="ana")] == ["3.txt", "1.txt"]
    assert [f.name for f in store.list(tag="odd")] == ["3.txt", "1.txt"]
    store.archive(made[0].id)
    assert [f.name for f in store.list(state="archived")] == ["0.txt"]
    page = store.list(limit=2)
    assert [f.name for f in store.list(limit=2, after=page[-1])] == ["2.txt", "1.txt"]


def test_stats_count_files_and_bytes_by_state(store: FileStore) -> None:
    one = store.save(TEXT, name="a.txt", owner="ana")
    store.save(b"tiny\n", name="b.txt")
    store.archive(one.id)
    stats = store.stats().to_dict()
    assert stats["stored"] == {"files": 1, "bytes": 5}
    assert stats["archived"] == {"files": 1, "bytes": len(TEXT)}
    assert stats["quota"]["used"] == len(TEXT) + 5
    assert stats["owners"][0]["scope"] == "owner:ana"
    assert stats["location"]["kind"] == "local"


def test_a_fresh_database_is_migrated_on_first_use(
    make_store: Callable[..., FileStore], files_db: object
) -> None:
    store = make_store()
    with store.db.engine.begin() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM buttress_files")).scalar() == 0


def test_open_gives_a_file_object_that_reads_lines_and_ranges(store: FileStore) -> None:
    saved = store.save(b"one\ntwo\nthree\n", name="lines.txt")
    with store.open(saved.id) as handle:
        assert handle.readline() == b"one\n"
        assert handle.read() == b"two\nthree\n"
    with store.open(saved.id, start=4, end=7) as handle:
        assert handle.read() == b"two"


def test_the_async_save_reads_a_blocking_file_off_the_loop(store: FileStore) -> None:
    saved = asyncio.run(store.asave(io.BytesIO(TEXT), name="notes.txt"))
    assert store.read_bytes(saved.id) == TEXT


def test_a_body_longer_than_declared_is_cut_at_the_declared_length(store: FileStore, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="passed the 10 bytes declared"):
        store.save(iter([b"a" * 8, b"b" * 8]), name="a.txt", size=10)
    assert leftover_bytes(tmp_path / "blobs") == 0


def test_a_save_stalled_past_its_reservation_is_swept_and_fails_cleanly(
    store: FileStore, clock: object, tmp_path: Path
) -> None:
    upload = store.begin(name="stalled.txt")
    upload.write(b"first part\n")
    clock.advance(store.settings.reservation_ttl + 1)  # type: ignore[attr-defined]
    assert store.sweep().reservations == 1
    with pytest.raises(ConflictError):
        upload.finish()
    assert leftover_bytes(tmp_path / "blobs") == 0
    assert store.list() == []


def test_an_archive_copy_left_by_a_crash_neither_blocks_the_next_archive_nor_stays(
    store: FileStore, tmp_path: Path
) -> None:
    saved = store.save(TEXT, name="a.txt")
    writer = store.archive_blobs.writer(f"archive/{saved.id[:2]}/{saved.id}-deadbeef.gz")
    writer.write(b"half a copy")  # a crashed archive: no guard row (its process is gone) and no commit
    archived = store.archive(saved.id)
    assert archived.state == "archived"
    store.clock.advance(store.settings.reservation_ttl + 1)  # type: ignore[attr-defined]
    assert store.sweep().leftovers == 1
    assert sorted(p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()) == [
        archived.archive_key.rsplit("/", 1)[-1]  # type: ignore[union-attr]
    ]


def test_two_deletes_of_one_file_take_its_bytes_off_the_counters_once(store: FileStore) -> None:
    saved = store.save(TEXT, name="a.txt", owner="ana")
    kept = store.save(b"kept\n", name="b.txt", owner="ana")
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.delete(saved.id))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    assert (store.usage("ana").used, store.usage("ana").files) == (kept.size, 1)
