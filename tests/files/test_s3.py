"""What only the S3 store promises: two parts of memory at most, and no upload left behind by an outage."""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from buttress.clock import FakeClock
from buttress.errors import BackendUnavailable, ConflictError, FileTooLarge, ValidationError
from buttress.files import FileStore, Upload
from buttress.files._s3 import MIN_PART_SIZE, S3BlobStore, content_disposition
from tests._ports import free_port
from tests.files._moto import (  # noqa: F401 - fixtures
    MotoProcess,
    MotoServer,
    aws_env,
    create_bucket,
    drop_bucket,
    incomplete_uploads,
    moto_server,
    s3,
    s3_bucket,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
PART = MIN_PART_SIZE
BLOCK = bytes(range(256)) * 256
"""64 KiB made once: the 200 MB stream reuses it, so the only memory a write adds is the store's own."""


def stream(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        size = min(len(BLOCK), total - sent)
        yield BLOCK if size == len(BLOCK) else BLOCK[:size]
        sent += size


def test_a_200_mb_stream_holds_at_most_two_parts_in_memory(tmp_path: Path, aws_env: None) -> None:  # noqa: F811
    total, part_size = 200 * 1000 * 1000, 8 * MiB
    # moto in a child process: its copy of the 200 MB is not this process's memory
    with MotoProcess(tmp_path / "moto.log") as server:
        client = server.client()
        store = S3BlobStore(create_bucket(client), client=client, part_size=part_size)
        writer = store.writer("files/ab/big")
        expected = hashlib.sha256()
        tracemalloc.start()
        try:
            for chunk in stream(total):
                expected.update(chunk)
                writer.write(chunk)
            writer.commit()
            _, write_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            actual = hashlib.sha256()
            for chunk in store.read("files/ab/big"):
                actual.update(chunk)
            _, read_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert store.size("files/ab/big") == total
        assert actual.digest() == expected.digest()
    assert writer.peak_buffered <= part_size
    assert write_peak <= 2 * part_size, f"a 200 MB write peaked at {write_peak / MiB:.1f} MiB traced"
    assert read_peak <= 4 * MiB, f"a 200 MB read peaked at {read_peak / MiB:.1f} MiB traced"


@pytest.fixture
def own_server(aws_env: None) -> Iterator[MotoServer]:  # noqa: F811
    """A moto server this test may stop and start again (same port, same in-process state)."""
    with MotoServer(free_port()) as server:
        yield server


def test_a_server_stopped_mid_multipart_fails_the_write_and_the_sweep_leaves_no_upload(
    own_server: MotoServer,
) -> None:
    client = own_server.client()
    bucket = create_bucket(client)
    store = S3BlobStore(bucket, "app", client=client, part_size=PART)
    writer = store.writer("files/ab/cut")
    writer.write(b"x" * (2 * PART))  # two parts uploaded
    assert incomplete_uploads(client, bucket) == ["app/files/ab/cut"]

    own_server.stop()
    with pytest.raises(BackendUnavailable) as caught:
        writer.write(b"y" * PART)
    assert caught.value.backend == "s3"
    assert "moto-test-secret-key" not in str(caught.value)
    writer.abort()  # safe after the failure: the abort it tried could not reach S3 either

    own_server.start()
    # The writer's own abort could not reach the server, so the upload outlived the outage; this proves
    # that the sweep (leftovers() and remove_leftover(), as the cleanup job runs them) takes it to zero.
    assert incomplete_uploads(client, bucket) == ["app/files/ab/cut"]
    assert [leftover.temp for leftover in store.leftovers()] == [writer.temp]
    store.remove_leftover(writer.temp)
    assert incomplete_uploads(client, bucket) == []
    assert list(store.keys()) == []
    drop_bucket(client, bucket)


def test_a_server_stopped_before_commit_fails_the_commit_and_the_sweep_leaves_no_upload(
    own_server: MotoServer,
) -> None:
    client = own_server.client()
    bucket = create_bucket(client)
    store = S3BlobStore(bucket, client=client, part_size=PART)
    writer = store.writer("files/ab/late")
    writer.write(b"x" * (PART + 10))

    own_server.stop()
    with pytest.raises(BackendUnavailable):
        writer.commit()

    own_server.start()
    assert store.size("files/ab/late") is None
    for leftover in store.leftovers():
        store.remove_leftover(leftover.temp)
    assert incomplete_uploads(client, bucket) == []
    drop_bucket(client, bucket)


def test_a_failure_while_s3_answers_aborts_the_upload_at_once(s3: S3Client, s3_bucket: str) -> None:  # noqa: F811
    store = S3BlobStore(s3_bucket, client=s3, part_size=PART)
    writer = store.writer("files/ab/fail")
    writer.write(b"x" * (PART + 1))
    assert incomplete_uploads(s3, s3_bucket) == ["files/ab/fail"]

    with pytest.raises(TypeError):
        writer.write("not bytes")  # type: ignore[arg-type]
    assert incomplete_uploads(s3, s3_bucket) == []  # no sweep needed: the writer aborted it
    writer.abort()


def test_moto_honours_conditional_writes_so_a_plain_put_cannot_publish_over_ours(
    s3: S3Client,  # noqa: F811
    s3_bucket: str,  # noqa: F811
) -> None:
    store = S3BlobStore(s3_bucket, client=s3, part_size=PART)
    writer = store.writer("files/ab/cond")
    writer.write(b"x" * (PART + 1))
    s3.put_object(Bucket=s3_bucket, Key="files/ab/cond", Body=b"someone else")

    with pytest.raises(ConflictError):
        writer.commit()
    assert s3.get_object(Bucket=s3_bucket, Key="files/ab/cond")["Body"].read() == b"someone else"
    assert incomplete_uploads(s3, s3_bucket) == []


def test_a_missing_bucket_says_so(s3: S3Client) -> None:  # noqa: F811
    store = S3BlobStore("no-such-bucket-here", client=s3)

    result = store.check()
    assert result.status == "fail"
    assert "'no-such-bucket-here' does not exist" in result.output
    with pytest.raises(BackendUnavailable, match="does not exist; create it"):
        store.writer("files/ab/x").commit()
    with pytest.raises(BackendUnavailable, match="does not exist"):
        list(store.keys())


def test_a_store_built_from_the_endpoint_uses_the_environment_and_signs_v4(
    moto_server: MotoServer,  # noqa: F811
    s3_bucket: str,  # noqa: F811
) -> None:
    store = S3BlobStore(s3_bucket, "team/", endpoint_url=moto_server.endpoint, region="us-east-1")
    writer = store.writer("files/ab/env")
    writer.write(b"from the environment")
    writer.commit()

    assert store.location == f"s3://{s3_bucket}/team/ at {moto_server.endpoint}"
    assert b"".join(store.read("files/ab/env")) == b"from the environment"
    url = store.presign("files/ab/env", expires=60)
    assert url is not None
    assert "X-Amz-Signature=" in url
    assert httpx.get(url, timeout=30).content == b"from the environment"


def test_credentials_in_an_endpoint_url_never_reach_a_message(aws_env: None) -> None:  # noqa: F811
    endpoint = f"http://user:hunter2@127.0.0.1:{free_port()}"
    store = S3BlobStore("bucket", endpoint_url=endpoint)

    assert "hunter2" not in store.location
    assert "hunter2" not in store.check().output


def test_keys_and_leftovers_follow_every_page(s3: S3Client, s3_bucket: str) -> None:  # noqa: F811
    store = S3BlobStore(s3_bucket, client=s3, part_size=PART)
    store.page_size = 3
    names = [f"files/{index:02d}" for index in range(10)]
    for name in names:
        s3.put_object(Bucket=s3_bucket, Key=name, Body=b"")
    for name in names[:7]:
        s3.create_multipart_upload(Bucket=s3_bucket, Key=f"up/{name}")

    assert list(store.keys("files/")) == names  # moto pages ListObjectsV2 (MaxKeys) but answers
    # ListMultipartUploads on one page whatever MaxUploads says: leftovers' paging is botocore's paginator,
    # the same as keys', and only its result is checked here
    assert sorted(leftover.temp for leftover in store.leftovers()) == [
        f".multipart/up/{n}" for n in names[:7]
    ]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"bucket": ""}, "bucket"),
        ({"bucket": "a/b"}, "bucket"),
        ({"bucket": "b", "part_size": PART - 1}, "part_size"),
        ({"bucket": "b", "prefix": "../up"}, "prefix"),
    ],
)
def test_a_bad_argument_names_its_field(s3: S3Client, arguments: dict[str, object], field: str) -> None:  # noqa: F811
    with pytest.raises(ValidationError) as caught:
        S3BlobStore(client=s3, **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


@pytest.mark.parametrize("expires", [0, 7 * 24 * 3600 + 1])
def test_presign_refuses_an_expiry_s3_would_not_sign(s3: S3Client, expires: float) -> None:  # noqa: F811
    with pytest.raises(ValidationError) as caught:
        S3BlobStore("b", client=s3).presign("files/ab/x", expires=expires)
    assert caught.value.field == "expires"


def test_content_disposition_keeps_an_ascii_fallback_and_the_utf8_name() -> None:
    assert content_disposition('naïve "quote".txt') == (
        "attachment; filename=\"na_ve _quote_.txt\"; filename*=UTF-8''na%C3%AFve%20%22quote%22.txt"
    )


def test_a_file_store_over_s3_leaves_no_upload_after_a_refusal_or_an_outage_and_its_sweep(
    own_server: MotoServer, make_store: Callable[..., FileStore], clock: FakeClock
) -> None:
    client = own_server.client()
    bucket = create_bucket(client)
    files = make_store(S3BlobStore(bucket, "app", client=client, part_size=PART))
    data = bytes(range(256)) * ((2 * PART + 300) // 256)

    saved = files.save(data, name="big.bin")
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(files.stream(saved.id)) == data
    with pytest.raises(FileTooLarge):
        files.save(iter([data[:PART], data[PART:]]), name="too-big.bin", max_size=PART + 1)
    assert incomplete_uploads(client, bucket) == []  # refused mid-multipart: aborted at once

    upload = files.begin(name="cut.bin")
    upload.write(data[: 2 * PART])
    deadline = time.monotonic() + 10  # the save's writer thread opens the multipart upload as it drains
    while not incomplete_uploads(client, bucket) and time.monotonic() < deadline:
        time.sleep(0.01)
    own_server.stop()
    with pytest.raises(BackendUnavailable):  # raised by the write that meets it, or at the latest by finish
        _write_and_finish(upload, data[2 * PART :] + data)
    own_server.start()
    assert len(incomplete_uploads(client, bucket)) == 1  # S3 was gone, so nobody could abort it then

    # the sweep removes leftovers older than reservation_ttl; moto dates every upload 2010-11-10, so here the
    # age test passes anyway, and the advance is what real S3 (which gives the true start) would need
    clock.advance(files.settings.reservation_ttl + 1)
    files.sweep()
    assert incomplete_uploads(client, bucket) == []
    assert [f.id for f in files.list()] == [saved.id]
    drop_bucket(client, bucket)


def _write_and_finish(upload: Upload, chunk: bytes) -> None:
    upload.write(chunk)
    upload.finish()
