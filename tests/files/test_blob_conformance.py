"""One contract, two stores: every BlobStore promise, checked on a directory and on S3 (moto on loopback).

The S3 store runs with the smallest part S3 allows (5 MiB), so the larger objects here take the
multipart path: created at the first full part, completed on commit, aborted on abort or on a conflict.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from buttress.errors import BackendUnavailable, ConflictError, NotFoundError, ValidationError
from buttress.files import BlobStore, LocalBlobStore
from buttress.files._s3 import MIN_PART_SIZE, S3BlobStore
from tests.files._moto import aws_env, moto_server, s3, s3_bucket, s3_client  # noqa: F401 - fixtures

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PART = MIN_PART_SIZE
SIZES = [0, 100, PART, 2 * PART + 7]
"""Empty, one small put, exactly one part, and a multipart object whose last part is short."""


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def write(store: BlobStore, key: str, data: bytes, *, chunk: int = 1_000_003) -> None:
    """Write ``data`` in odd-sized chunks (never aligned to a part) and commit."""
    writer = store.writer(key)
    for offset in range(0, len(data), chunk):
        writer.write(data[offset : offset + chunk])
    writer.commit()


def read_all(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read(key, start, end))


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """A LocalBlobStore in a fresh directory, or an S3BlobStore in a fresh bucket under a prefix."""
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    client: S3Client = request.getfixturevalue("s3")
    yield S3BlobStore(request.getfixturevalue("s3_bucket"), "app", client=client, part_size=PART)


@pytest.mark.parametrize("size", SIZES)
def test_a_committed_write_reads_back_whole(store: BlobStore, size: int) -> None:
    data = payload(size)
    write(store, "files/ab/one", data)

    chunks = list(store.read("files/ab/one", chunk_size=1024 * 1024))
    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= 1024 * 1024 for chunk in chunks)
    assert store.size("files/ab/one") == size
    assert list(store.keys()) == ["files/ab/one"]
    assert list(store.leftovers()) == []


def test_ranges_read_the_bytes_a_slice_would(store: BlobStore) -> None:
    data = payload(PART + 10)
    write(store, "files/ab/range", data)
    size = len(data)

    for start, end in [(0, None), (7, None), (7, 19), (PART - 3, PART + 5), (0, size), (5, 5), (size, None)]:
        assert read_all(store, "files/ab/range", start, end) == data[start:end], (start, end)
    chunks = list(store.read("files/ab/range", 10, 10 + 200_000, chunk_size=65_536))
    assert [len(chunk) for chunk in chunks] == [65_536, 65_536, 65_536, 3_392]


@pytest.mark.parametrize(
    ("start", "end"), [(0, PART + 11), (PART + 11, None), (-1, 5), (9, 3), (PART + 20, PART + 30)]
)
def test_a_range_outside_the_object_is_a_validation_error(
    store: BlobStore, start: int, end: int | None
) -> None:
    data = payload(PART + 10)
    write(store, "files/ab/range", data)

    with pytest.raises(ValidationError, match=f"within the object's {PART + 10} bytes") as caught:
        store.read("files/ab/range", start, end)
    assert caught.value.field == "range"
    assert read_all(store, "files/ab/range") == data


def test_a_missing_key_is_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFoundError, match="files/ab/none"):
        store.read("files/ab/none")
    with pytest.raises(NotFoundError):
        store.read("files/ab/none", 5, 5)
    assert store.size("files/ab/none") is None
    assert store.delete("files/ab/none") is False


@pytest.mark.parametrize("key", ["../escape", "/absolute", "files/../x", "files/.hidden", "", "a\\b"])
def test_a_bad_key_is_refused_before_anything_is_written(store: BlobStore, key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        store.writer(key)
    assert caught.value.field == "key"
    with pytest.raises(ValidationError):
        store.read(key)
    assert list(store.keys()) == []
    assert list(store.leftovers()) == []


@pytest.mark.parametrize("size", [100, 2 * PART + 7])
def test_nothing_is_ever_overwritten(store: BlobStore, size: int) -> None:
    first = payload(size, seed=1)
    write(store, "files/ab/same", first)

    with pytest.raises(ConflictError, match="nothing was overwritten"):
        write(store, "files/ab/same", payload(size, seed=2))
    assert read_all(store, "files/ab/same") == first
    assert list(store.keys()) == ["files/ab/same"]
    assert list(store.leftovers()) == []


def test_two_writers_racing_for_one_key_the_first_commit_wins(store: BlobStore) -> None:
    first, second = store.writer("files/ab/race"), store.writer("files/ab/race")
    first.write(payload(PART + 1, seed=1))
    second.write(payload(PART + 1, seed=2))

    first.commit()
    with pytest.raises(ConflictError):
        second.commit()
    assert read_all(store, "files/ab/race") == payload(PART + 1, seed=1)
    assert list(store.leftovers()) == []
    second.abort()  # idempotent after a failed commit


@pytest.mark.parametrize("size", [100, 2 * PART + 7])
def test_abort_leaves_nothing_behind(store: BlobStore, size: int) -> None:
    writer = store.writer("files/ab/gone")
    writer.write(payload(size))
    writer.abort()
    writer.abort()

    assert list(store.keys()) == []
    assert list(store.leftovers()) == []
    assert store.size("files/ab/gone") is None
    with pytest.raises(RuntimeError):
        writer.write(b"more")
    with pytest.raises(RuntimeError):
        writer.commit()


def test_a_writer_neither_committed_nor_aborted_is_a_leftover_until_removed(store: BlobStore) -> None:
    before = time.time()
    writer = store.writer("files/ab/crash")
    writer.write(payload(PART + 1))  # on S3 past one part: a multipart upload now exists
    after = time.time()

    leftovers = list(store.leftovers())
    assert [leftover.temp for leftover in leftovers] == [writer.temp]
    assert leftovers[0].started_at <= after + 2
    if store.kind == "local":  # moto 5.2 answers every upload's Initiated with 2010-11-10; AWS gives the time
        assert leftovers[0].started_at >= before - 2
    assert list(store.keys()) == []

    store.remove_leftover(writer.temp)
    store.remove_leftover(writer.temp)  # already gone: nothing to do
    assert list(store.leftovers()) == []
    assert list(store.keys()) == []


def test_remove_leftover_refuses_a_published_key(store: BlobStore) -> None:
    write(store, "files/ab/kept", b"kept")

    with pytest.raises(ValidationError) as caught:
        store.remove_leftover("files/ab/kept")
    assert caught.value.field == "temp"
    assert read_all(store, "files/ab/kept") == b"kept"


def test_delete_says_whether_it_removed_something(store: BlobStore) -> None:
    write(store, "files/ab/del", b"bytes")
    write(store, "files/ab/other", b"other")

    assert store.delete("files/ab/del") is True
    assert store.delete("files/ab/del") is False
    assert list(store.keys()) == ["files/ab/other"]
    with pytest.raises(NotFoundError):
        store.read("files/ab/del")


def test_keys_are_sorted_filtered_by_prefix_and_never_temp_data(store: BlobStore) -> None:
    names = ["files/ab/2", "files/ab/10", "archive/cd/1.gz", "files/cd/1", "files/ab/1"]
    for name in random.Random(3).sample(names, len(names)):
        write(store, name, name.encode())
    pending = store.writer("files/ab/pending")
    pending.write(payload(PART + 1))

    assert list(store.keys()) == sorted(names)
    assert list(store.keys("files/ab/")) == ["files/ab/1", "files/ab/10", "files/ab/2"]
    assert list(store.keys("archive/")) == ["archive/cd/1.gz"]
    assert list(store.keys("nothing/")) == []
    pending.abort()


def test_presign_is_a_download_url_on_s3_and_none_on_disk(store: BlobStore) -> None:
    data = payload(3000)
    write(store, "files/ab/doc", data)

    url = store.presign(
        "files/ab/doc", expires=300, filename="résumé 2026.pdf", content_type="application/pdf"
    )
    if store.kind == "local":
        assert url is None
        return
    assert url is not None
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "application/pdf"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%202026.pdf" in disposition


def test_info_and_check_say_what_and_where(store: BlobStore) -> None:
    info = store.info()

    assert info.kind == store.kind
    assert info.available is True
    assert info.shared is (store.kind == "s3")
    assert info.detail == store.location
    assert store.check().status == "pass"
    assert "secret" not in info.detail


def test_an_unwritable_directory_fails_its_check(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    shutil.rmtree(tmp_path / "blobs" / ".tmp")
    (tmp_path / "blobs" / ".tmp").write_bytes(b"not a directory")  # root ignores chmod; this stops it too

    result = store.check()
    assert result.status == "fail"
    assert "cannot be written" in result.output
    assert store.info().available is False


@pytest.fixture
def closed_endpoint() -> str:
    """A loopback port nothing listens on."""
    from tests._ports import free_port

    return f"http://127.0.0.1:{free_port()}"


def test_an_unreachable_s3_fails_its_check_and_every_call(closed_endpoint: str) -> None:
    client = s3_client(closed_endpoint)
    store = S3BlobStore("bucket", "app", client=client, part_size=PART)

    result = store.check()
    assert result.status == "fail"
    assert "does not answer" in result.output
    assert store.info().available is False
    calls: list[Callable[[], object]] = [
        lambda: store.read("files/ab/x"),
        lambda: store.size("files/ab/x"),
        lambda: store.delete("files/ab/x"),
        lambda: list(store.keys()),
        lambda: list(store.leftovers()),
        lambda: store.remove_leftover(".multipart/files/ab/x"),
        lambda: write(store, "files/ab/x", b"small"),
        lambda: write(store, "files/ab/x", payload(PART + 1)),
    ]
    for call in calls:
        with pytest.raises(BackendUnavailable) as caught:
            call()
        assert caught.value.backend == "s3"
        assert "moto-test-secret-key" not in str(caught.value)
        assert closed_endpoint in str(caught.value)


def test_the_local_store_keeps_its_files_where_it_says(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    write(store, "files/ab/here", b"here")

    assert (Path(store.location) / "files" / "ab" / "here").read_bytes() == b"here"
    assert os.listdir(Path(store.location) / ".tmp") == []
