"""FileStore over S3 (moto on loopback): the same promises as on local disk, multipart included."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from mypy_boto3_s3 import S3Client

from buttress.errors import ConflictError, FileTooLarge, FileTypeRejected, QuotaExceeded
from buttress.files import FileStore, S3BlobStore
from tests.files._moto import aws_env, create_bucket, incomplete_uploads, moto_server, s3
from tests.files.test_store import ELF

__all__ = ["aws_env", "moto_server", "s3"]

MIB = 1024 * 1024
PART = 5 * MIB


@pytest.fixture
def bucket(s3: S3Client) -> str:
    return create_bucket(s3)


@pytest.fixture
def s3_store(make_store: Callable[..., FileStore], s3: S3Client, bucket: str) -> FileStore:
    return make_store(S3BlobStore(bucket, "app", client=s3, part_size=PART))


def objects(client: S3Client, bucket: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_a_multipart_file_round_trips_with_its_hash(s3_store: FileStore, s3: S3Client, bucket: str) -> None:
    body = random.Random(12).randbytes(12 * MIB + 123)  # the same every run: never an executable's magic

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), MIB):
            yield body[start : start + MIB]

    saved = s3_store.save(pieces(), name="episode.bin", owner="ana")
    assert saved.sha256 == hashlib.sha256(body).hexdigest()
    assert objects(s3, bucket) == [f"app/{saved.key}"]
    assert b"".join(s3_store.stream(saved.id, start=PART - 10, end=PART + 10)) == body[PART - 10 : PART + 10]
    assert s3_store.read_bytes(saved.id) == body
    assert incomplete_uploads(s3, bucket) == []


def test_a_presigned_url_downloads_the_file_under_its_name(s3_store: FileStore) -> None:
    saved = s3_store.save(b"show notes\n", name="notes é.txt")
    url = s3_store.presign(saved.id, expires=60)
    assert url is not None
    response = httpx.get(url)
    assert response.content == b"show notes\n"
    assert "notes%20%C3%A9.txt" in response.headers["content-disposition"]


def test_a_body_cut_mid_multipart_leaves_no_object_and_no_upload(
    s3_store: FileStore, s3: S3Client, bucket: str
) -> None:
    with pytest.raises(FileTooLarge):
        s3_store.save(iter([b"z" * MIB] * 30), name="big.txt", max_size=12 * MIB)
    assert objects(s3, bucket) == []
    assert incomplete_uploads(s3, bucket) == []
    assert s3_store.usage().reserved == 0


def test_a_rejected_type_and_a_quota_refusal_leave_nothing(
    make_store: Callable[..., FileStore], s3: S3Client, bucket: str
) -> None:
    store = make_store(S3BlobStore(bucket, client=s3, part_size=PART), quota=8 * MIB)
    with pytest.raises(FileTypeRejected):
        store.save(ELF, name="photo.jpg")
    with pytest.raises(QuotaExceeded):
        store.save(iter([b"q" * MIB] * 9), name="nine.txt")
    assert objects(s3, bucket) == []
    assert incomplete_uploads(s3, bucket) == []


def test_archive_and_restore_in_the_bucket(s3_store: FileStore, s3: S3Client, bucket: str) -> None:
    saved = s3_store.save(b"archive me\n" * 1000, name="old.txt")
    archived = s3_store.archive(saved.id)
    assert objects(s3, bucket) == [f"app/{archived.archive_key}"]
    with pytest.raises(ConflictError):
        s3_store.read_bytes(saved.id)
    assert s3_store.restore(saved.id).sha256 == saved.sha256
    assert objects(s3, bucket) == [f"app/{saved.key}"]
    assert s3_store.delete(saved.id)
    assert objects(s3, bucket) == []


def test_an_abandoned_multipart_save_is_swept(
    s3_store: FileStore, s3: S3Client, bucket: str, clock: object
) -> None:
    upload = s3_store.begin(name="abandoned.bin")
    for _ in range(6):
        upload.write(b"a" * MIB)  # past one part: a multipart upload is open in the bucket
    deadline = time.monotonic() + 10  # the writer thread opens it as the queued chunks drain
    while not incomplete_uploads(s3, bucket) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert incomplete_uploads(s3, bucket) == [f"app/{upload.request.key}"]
    clock.advance(s3_store.settings.reservation_ttl + 1)  # type: ignore[attr-defined]
    report = s3_store.sweep()
    assert report.reservations == 1
    assert incomplete_uploads(s3, bucket) == []
    assert s3_store.usage().reserved == 0
