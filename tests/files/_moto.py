"""moto's S3 server for the tests: started by the harness on 127.0.0.1, never 0.0.0.0, never real AWS.

:class:`MotoServer` runs moto in a thread of the test process (``ThreadedMotoServer``). moto keeps its
state in process-wide backends, so every in-process server sees the same buckets, and a server that is
stopped and started again on its port still holds the uploads it had: the disconnect tests rely on it.
:class:`MotoProcess` runs moto in a child process instead, so a memory measurement of this process does
not count the server's copy of the bytes. Clients get dummy credentials as arguments, and the ``aws_env``
fixture points boto3 away from the developer's ``~/.aws`` and sets dummy credentials in the environment.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from tests._ports import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns a failure's log

REGION = "us-east-1"
ACCESS_KEY = "moto-test-access-key"
SECRET_KEY = "moto-test-secret-key"  # a dummy: moto accepts any key


def s3_client(endpoint: str, **config: Any) -> S3Client:
    """A client of ``endpoint`` with dummy credentials, path-style, failing fast (one attempt, 5 s)."""
    options: dict[str, Any] = {
        "connect_timeout": 5,
        "read_timeout": 30,
        "retries": {"max_attempts": 1, "mode": "standard"},
        "s3": {"addressing_style": "path"},
        "signature_version": "s3v4",
        **config,
    }
    client: S3Client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(**options),
    )
    return client


def wait_listening(port: int, *, timeout: float = 30.0) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection (a server starting, not a test sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class _Moto:
    """A moto endpoint on a loopback port, used as a context manager: started on entry, stopped on exit."""

    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **config: Any) -> S3Client:
        return s3_client(self.endpoint, **config)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MotoServer(_Moto):
    """moto in a thread on 127.0.0.1: :meth:`stop` closes the port, :meth:`start` reopens it (same state)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_listening(self.port)

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()


class MotoProcess(_Moto):
    """moto in a child process on 127.0.0.1 (its memory is not this process's); state dies with it."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_listening(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def create_bucket(client: S3Client) -> str:
    """A new, empty bucket with a unique name."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name)
    return name


def drop_bucket(client: S3Client, bucket: str) -> None:
    """Abort the bucket's uploads, delete its objects, then the bucket."""
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


def incomplete_uploads(client: S3Client, bucket: str) -> list[str]:
    """Keys of the bucket's multipart uploads that were neither completed nor aborted."""
    return [upload["Key"] for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server for the session (tests that stop a server start their own :class:`MotoServer`)."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials in the environment, and boto3 kept away from ``~/.aws``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3(moto_server: MotoServer, aws_env: None) -> S3Client:
    """A client of the session's moto server."""
    return moto_server.client()


@pytest.fixture
def s3_bucket(s3: S3Client) -> Iterator[str]:
    """A fresh bucket, emptied and removed after the test."""
    bucket = create_bucket(s3)
    yield bucket
    drop_bucket(s3, bucket)
