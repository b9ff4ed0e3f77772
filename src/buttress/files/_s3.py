"""Bytes in an S3 bucket (or any S3-compatible store): the distributed :class:`BlobStore`.

A write holds at most one part in its buffer: an object smaller than ``part_size`` is one conditional
PutObject on commit; a larger one is an explicit multipart upload (create at the first full part, one
UploadPart per part, a conditional CompleteMultipartUpload on commit, AbortMultipartUpload on abort and
on any failure). ``If-None-Match: *`` makes S3 refuse to publish over an existing key, so nothing is
ever overwritten, even by a racing writer. A crash leaves only an incomplete multipart upload, which
:meth:`S3BlobStore.leftovers` lists (ListMultipartUploads) and :meth:`S3BlobStore.remove_leftover` aborts.
boto3 is the client: sync like the contract, explicit about every request, and measured in
``benchmarks/bench_files_s3.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, NoReturn, cast
from urllib.parse import quote

from buttress._extras import require
from buttress._redaction import mask_url_password
from buttress.errors import BackendUnavailable, ConflictError, NotFoundError, ValidationError
from buttress.files._blobs import Leftover
from buttress.files._local import check_key
from buttress.health_types import CheckResult
from buttress.resilience import StoreInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["MIN_PART_SIZE", "S3BlobStore"]

MiB: Final = 1024 * 1024
MIN_PART_SIZE: Final = 5 * MiB
"""S3 refuses a part smaller than this unless it is the last one."""
MAX_PART_SIZE: Final = 5 * 1024 * MiB
MAX_PARTS: Final = 10_000
MAX_EXPIRES: Final = 7 * 24 * 3600
"""SigV4 presigned URLs live at most seven days."""
UPLOAD_TEMP: Final = ".multipart/"
"""``temp`` of a write: this marker and the key, a name no published key can have (no hidden part)."""
_MISSING: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_REFUSED: Final = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"})
_EXISTS: Final = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_RANGE: Final = re.compile(r"bytes \d+-\d+/(\d+)")


def _botocore() -> Any:
    return require("botocore.exceptions", "s3", "the S3 blob store")


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def content_disposition(filename: str) -> str:
    """``attachment`` naming ``filename``: an ASCII fallback and the RFC 5987 UTF-8 form."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    encoded = quote(filename, safe="!#$&+^`|")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


class _S3Writer:
    """One object being written: a buffer of at most one part, then a put or a multipart upload."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        check_key(key)
        self._store = store
        self._name = key
        self._key = store.object_key(key)
        self.temp = UPLOAD_TEMP + key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._open = True
        self.peak_buffered = 0
        """The most bytes this writer's buffer has held (one part at most; boto3 sends it without a copy)."""

    @property
    def buffered(self) -> int:
        """Bytes waiting in the buffer for the next part."""
        return len(self._buffer)

    def write(self, chunk: bytes) -> None:
        if not self._open:
            raise RuntimeError("write after commit or abort")
        size = self._store.part_size
        try:
            view = memoryview(chunk)
            while view:
                room = size - len(self._buffer)
                self._buffer += view[:room]
                view = view[room:]
                self.peak_buffered = max(self.peak_buffered, len(self._buffer))
                if len(self._buffer) == size:
                    self._send_part()
        except BaseException:
            self._fail()
            raise

    def _send_part(self) -> None:
        """Upload the buffer as the next part; a fresh buffer takes its place once it is sent."""
        client, bucket = self._store.client, self._store.bucket
        if len(self._parts) >= MAX_PARTS:
            raise ValidationError(
                f"an object may have at most {MAX_PARTS} parts of part_size={self._store.part_size} bytes; "
                "raise part_size for objects this large",
                field="part_size",
            )
        with self._store.translated("upload"):
            if self._upload_id is None:
                created = client.create_multipart_upload(Bucket=bucket, Key=self._key)
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            sent = client.upload_part(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=cast("bytes", self._buffer),
            )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})
        self._buffer = bytearray()

    def commit(self) -> None:
        if not self._open:
            raise RuntimeError("commit after commit or abort")
        client, bucket = self._store.client, self._store.bucket
        try:
            with self._store.translated("commit", conflict=self._name):
                if self._upload_id is None:
                    client.put_object(
                        Bucket=bucket, Key=self._key, Body=cast("bytes", self._buffer), IfNoneMatch="*"
                    )
                else:
                    if self._buffer:
                        self._send_part()
                    client.complete_multipart_upload(
                        Bucket=bucket,
                        Key=self._key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
                        IfNoneMatch="*",
                    )
        except BaseException:
            self._fail()
            raise
        self._open = False
        self._buffer = bytearray()

    def _fail(self) -> None:
        """After an error: drop the buffer and try to abort the upload (a sweeper finds it if this fails)."""
        try:
            self.abort()
        except Exception:  # noqa: BLE001 - the first error is the one to report; leftovers() finds the upload
            self._open = False
            self._upload_id = None

    def abort(self) -> None:
        self._open = False
        self._buffer = bytearray()
        if self._upload_id is None:
            return
        with self._store.translated("abort"):
            try:
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._key, UploadId=self._upload_id
                )
            except _botocore().ClientError as exc:
                if _code(exc) not in ("NoSuchUpload", "404"):
                    raise
        self._upload_id = None


class S3BlobStore:
    """Objects in ``bucket`` under ``prefix``; a store made with ``client`` uses it as given.

    Without ``client``, one is made from boto3's usual credential chain (environment, config files,
    instance role) with ``endpoint_url`` (MinIO, R2, a moto server) and ``region``. Commits use
    conditional writes (``If-None-Match: *``): the S3 service must honour them (AWS does since 2024).
    """

    kind = "s3"
    page_size = 1000
    """Keys or uploads per listing request (S3's own maximum is 1,000)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = 8 * MiB,
        client: S3Client | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValidationError(
                f"bucket must be a bucket name, got {bucket!r}; e.g. 'uploads'", field="bucket"
            )
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValidationError(
                f"part_size must be between {MIN_PART_SIZE} (5 MiB, the S3 minimum) and {MAX_PART_SIZE} "
                f"bytes, got {part_size}; e.g. 8 MiB",
                field="part_size",
            )
        prefix = prefix.strip("/")
        if prefix:
            try:
                check_key(prefix)
            except ValidationError:
                raise ValidationError(
                    f"prefix must be a relative path of plain parts, got {prefix!r}; e.g. 'myapp/uploads'",
                    field="prefix",
                ) from None
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.part_size = part_size
        self.endpoint_url = endpoint_url
        self.client: S3Client = client if client is not None else self._client(endpoint_url, region)
        endpoint = endpoint_url or self.client.meta.endpoint_url
        self.location = f"s3://{bucket}/{self.prefix} at {mask_url_password(endpoint)}"

    @staticmethod
    def _client(endpoint_url: str | None, region: str | None) -> S3Client:
        boto3 = require("boto3", "s3", "the S3 blob store")
        config = require("botocore.config", "s3", "the S3 blob store").Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        client: S3Client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
        return client

    def __repr__(self) -> str:
        return f"<S3BlobStore {self.location}>"

    def object_key(self, key: str) -> str:
        """The bucket's key for the store's ``key``."""
        return self.prefix + key

    def translated(self, action: str, *, conflict: str | None = None) -> _Translated:
        """A context that turns botocore's errors during ``action`` into buttress errors."""
        return _Translated(self, action, conflict)

    def unavailable(self, action: str, why: str) -> NoReturn:
        raise BackendUnavailable(
            f"S3 store {self.location} cannot {action}: {why}", backend="s3", context={"bucket": self.bucket}
        )

    def writer(self, key: str) -> _S3Writer:
        """Start a write of ``key`` (published by ``commit``)."""
        return _S3Writer(self, key)

    def read(
        self, key: str, start: int = 0, end: int | None = None, *, chunk_size: int = 1024 * 1024
    ) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of ``key`` from one ranged GetObject, streamed in chunks.

        The request is made before the first chunk, so a missing key or a bad range raises here. Ranges
        a GET cannot express (empty, negative, past the end) are checked against HeadObject's size.
        """
        name = self.object_key(check_key(key).as_posix())
        if start >= 0 and (end is None or end > start):
            got = self._get(name, key, start, end)
            if got is not None:
                match = _RANGE.fullmatch(got.get("ContentRange", ""))
                total = int(match.group(1)) if match else int(got["ContentLength"])
                if end is None or end <= total:
                    return self._chunks(got["Body"], chunk_size)
                got["Body"].close()
        size = self.size(key)
        if size is None:
            raise NotFoundError("file", key)
        stop = size if end is None else end
        if start < 0 or stop > size or start > stop:
            raise _bad_range(size, start, stop)
        if start == stop:
            return iter(())
        got = self._get(name, key, start, stop)
        if got is None:  # the object changed between the two requests: say so rather than loop
            raise _bad_range(size, start, stop)
        return self._chunks(got["Body"], chunk_size)

    def _get(self, name: str, key: str, start: int, end: int | None) -> Any:
        """GetObject of ``[start, end)``; None when S3 calls the range unsatisfiable."""
        ranged = (
            {} if start == 0 and end is None else {"Range": f"bytes={start}-{'' if end is None else end - 1}"}
        )
        with self.translated("read"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=name, **ranged)  # type: ignore[arg-type]
            except _botocore().ClientError as exc:
                if _code(exc) in _MISSING:
                    raise NotFoundError("file", key) from None
                if _code(exc) == "InvalidRange":
                    return None
                raise

    def _chunks(self, body: Any, chunk_size: int) -> Iterator[bytes]:
        with body, self.translated("read"):
            yield from body.iter_chunks(chunk_size)

    def size(self, key: str) -> int | None:
        """The object's length, or None when there is none."""
        name = self.object_key(check_key(key).as_posix())
        with self.translated("stat"):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=name)
            except _botocore().ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
        return int(head["ContentLength"])

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when there was something to remove (S3's DELETE does not say: HEAD first)."""
        if self.size(key) is None:
            return False
        with self.translated("delete"):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        return True

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Published keys starting with ``prefix``, in S3's order (sorted by UTF-8 bytes), page by page."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix, PaginationConfig={"PageSize": self.page_size}
        )
        cut = len(self.prefix)
        with self.translated("list"):
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][cut:]

    def _uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
        )
        with self.translated("list uploads"):
            for page in pages:
                yield from page.get("Uploads", [])  # type: ignore[misc]

    def leftovers(self) -> Iterator[Leftover]:
        """Incomplete multipart uploads under the prefix, oldest first (one per key, its newest start)."""
        newest: dict[str, float] = {}
        for upload in self._uploads(self.prefix):
            temp = UPLOAD_TEMP + upload["Key"][len(self.prefix) :]
            newest[temp] = max(newest.get(temp, 0.0), upload["Initiated"].timestamp())
        found = [Leftover(temp, started) for temp, started in newest.items()]
        return iter(sorted(found, key=lambda leftover: leftover.started_at))

    def remove_leftover(self, temp: str) -> None:
        """Abort every incomplete upload of the key ``temp`` names (nothing when there is none)."""
        key = temp[len(UPLOAD_TEMP) :]
        if not temp.startswith(UPLOAD_TEMP) or not key:
            raise ValidationError(
                f"temp must name an upload as {UPLOAD_TEMP}<key>, got {temp!r}; take it from leftovers()",
                field="temp",
            )
        name = self.object_key(check_key(key).as_posix())
        for upload in list(self._uploads(name)):
            if upload["Key"] != name:
                continue
            with self.translated("abort"):
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=name, UploadId=upload["UploadId"]
                    )
                except _botocore().ClientError as exc:
                    if _code(exc) not in ("NoSuchUpload", "404"):
                        raise

    def presign(
        self, key: str, *, expires: float, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        """A GetObject URL valid for ``expires`` seconds; ``filename`` becomes an attachment's name."""
        if not 1 <= expires <= MAX_EXPIRES:
            raise ValidationError(
                f"expires must be between 1 and {MAX_EXPIRES} seconds (seven days), got {expires!r}; "
                "e.g. 3600",
                field="expires",
            )
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self.object_key(check_key(key).as_posix())}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type is not None:
            params["ResponseContentType"] = content_type
        with self.translated("presign"):
            return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires))

    def info(self) -> StoreInfo:
        """Kind ``s3``, shared by every process, the bucket, prefix and endpoint as detail."""
        available = self.check().status == "pass"
        return StoreInfo(kind=self.kind, shared=True, available=available, detail=self.location)

    def check(self) -> CheckResult:
        """``pass`` when HeadBucket answers, ``fail`` saying why (unreachable, missing, refused)."""
        try:
            with self.translated("check"):
                self.client.head_bucket(Bucket=self.bucket)
        except BackendUnavailable as exc:
            return CheckResult("fail", str(exc))
        return CheckResult("pass", f"files in {self.location}")


def _bad_range(size: int, start: int, stop: int) -> ValidationError:
    return ValidationError(
        f"range must lie within the object's {size} bytes, got [{start}, {stop}); e.g. start=0", field="range"
    )


class _Translated:
    """Turns botocore's errors into buttress errors; never puts a credential or a signed URL in a message."""

    def __init__(self, store: S3BlobStore, action: str, conflict: str | None) -> None:
        self._store = store
        self._action = action
        self._conflict = conflict

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        errors = _botocore()

        def unavailable(why: str) -> NoReturn:
            self._store.unavailable(self._action, why)

        if isinstance(exc, errors.ConnectionError | errors.HTTPClientError):
            unavailable(f"{type(exc).__name__} (the endpoint does not answer)")
        if isinstance(exc, errors.NoCredentialsError):
            unavailable("no AWS credentials were found (environment, config files or instance role)")
        if not isinstance(exc, errors.ClientError):
            return
        code = _code(exc)
        if code == "NoSuchBucket" or (code == "404" and self._action == "check"):
            unavailable(f"the bucket {self._store.bucket!r} does not exist; create it or fix the files URL")
        if code in _REFUSED:
            unavailable(f"S3 refused the credentials ({code}); check the access key and the bucket policy")
        if self._conflict is not None and code in _EXISTS:
            raise ConflictError(
                f"an object already exists at key {self._conflict!r}; nothing was overwritten",
                context={"key": self._conflict},
            ) from None
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if status >= 500:
            unavailable(f"S3 answered {status} {code}")
