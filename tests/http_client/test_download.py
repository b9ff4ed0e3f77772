"""Streaming downloads: to disk without holding the body, capped, and never leaving a partial file."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from buttress.errors import DownloadTooLarge, UpstreamStatusError, ValidationError
from buttress.http import AsyncHttpClient, HttpClient
from buttress.testing import Upstream
from tests.http_client.conftest import MakePolicies

PATTERN = b"buttress"


def _expected(size: int) -> bytes:
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


@pytest.fixture
def client(make_policies: MakePolicies) -> Iterator[HttpClient]:
    with HttpClient(policies=make_policies()) as client:
        yield client


def test_a_download_lands_whole_with_progress(upstream: Upstream, client: HttpClient, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    result = client.download(
        upstream.url(path="/bytes/300000"), tmp_path / "file.bin", progress=lambda d, t: seen.append((d, t))
    )
    assert result.size == 300_000
    assert result.path.read_bytes() == _expected(300_000)
    assert seen[-1] == (300_000, 300_000)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) > 1  # chunk by chunk, not all at once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_a_declared_size_over_the_cap_is_refused_before_writing(
    upstream: Upstream, client: HttpClient, tmp_path: Path
) -> None:
    dest = tmp_path / "big.bin"
    with pytest.raises(DownloadTooLarge, match="Content-Length is 50000 bytes") as caught:
        client.download(upstream.url(path="/bytes/50000"), dest, max_bytes=10_000)
    assert caught.value.context["max_bytes"] == 10_000
    assert list(tmp_path.iterdir()) == []


class _Chunked(http.server.BaseHTTPRequestHandler):
    """A server that sends an unannounced (chunked) body of 40 chunks of 1 KiB: only counting can cap it."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(40):
            self.wfile.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chunked_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Chunked)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/stream"
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_body_growing_past_the_cap_is_aborted_and_removed(
    chunked_url: str, client: HttpClient, tmp_path: Path
) -> None:
    dest = tmp_path / "grow.bin"
    dest.write_bytes(b"the previous version")
    with pytest.raises(DownloadTooLarge, match="body passed 10000 bytes"):
        client.download(chunked_url, dest, max_bytes=10_000, chunk_size=1024)
    assert dest.read_bytes() == b"the previous version"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grow.bin"]


def test_a_failing_progress_callback_leaves_nothing(
    upstream: Upstream, client: HttpClient, tmp_path: Path
) -> None:
    def explode(done: int, total: int | None) -> None:
        raise RuntimeError("disk quota")

    with pytest.raises(RuntimeError, match="disk quota"):
        client.download(upstream.url(path="/bytes/200000"), tmp_path / "x.bin", progress=explode)
    assert list(tmp_path.iterdir()) == []


def test_an_error_status_writes_nothing(upstream: Upstream, client: HttpClient, tmp_path: Path) -> None:
    with pytest.raises(UpstreamStatusError):
        client.download(upstream.url(path="/status/404"), tmp_path / "missing.bin")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_name_the_field(upstream: Upstream, client: HttpClient, tmp_path: Path) -> None:
    url = upstream.url(path="/bytes/10")
    with pytest.raises(ValidationError) as caught:
        client.download(url, tmp_path / "nowhere" / "x.bin")
    assert caught.value.field == "dest"
    with pytest.raises(ValidationError) as caught:
        client.download(url, tmp_path)
    assert caught.value.field == "dest"
    with pytest.raises(ValidationError) as caught:
        client.download(url, tmp_path / "x", max_bytes=-1)
    assert caught.value.field == "max_bytes"
    with pytest.raises(ValidationError) as caught:
        client.download(url, tmp_path / "x", chunk_size=0)
    assert caught.value.field == "chunk_size"
    with pytest.raises(ValidationError) as caught:
        client.download(url, None)  # type: ignore[arg-type]
    assert caught.value.field == "dest"
    assert list(tmp_path.iterdir()) == []
    assert upstream.calls() == 0  # refused before the request was sent


def test_bad_async_download_arguments_send_nothing(
    upstream: Upstream, make_policies: MakePolicies, tmp_path: Path
) -> None:
    async def main() -> None:
        async with AsyncHttpClient(policies=make_policies()) as client:
            for dest, options, field in (
                (tmp_path / "nowhere" / "x.bin", {}, "dest"),
                (tmp_path / "x", {"max_bytes": -1}, "max_bytes"),
                (tmp_path / "x", {"chunk_size": 0}, "chunk_size"),
            ):
                with pytest.raises(ValidationError) as caught:
                    await client.download(upstream.url(path="/bytes/10"), dest, **options)
                assert caught.value.field == field

    asyncio.run(main())
    assert upstream.calls() == 0


def test_async_download_caps_and_cleans_up_too(
    upstream: Upstream, chunked_url: str, make_policies: MakePolicies, tmp_path: Path
) -> None:
    async def main() -> int:
        async with AsyncHttpClient(policies=make_policies()) as client:
            with pytest.raises(DownloadTooLarge):
                await client.download(chunked_url, tmp_path / "grow.bin", max_bytes=5_000, chunk_size=1024)
            result = await client.download(upstream.url(path="/bytes/123456"), tmp_path / "ok.bin")
            return result.size

    assert asyncio.run(main()) == 123_456
    assert (tmp_path / "ok.bin").read_bytes() == _expected(123_456)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.bin"]


def test_a_cancelled_async_download_leaves_no_partial_file(
    upstream: Upstream, make_policies: MakePolicies, tmp_path: Path
) -> None:
    from buttress.testing import Fault

    upstream.set_fault("default", Fault(slow_body=0.1, body_chunks=20))

    def started() -> bool:
        return any(tmp_path.iterdir())

    async def main() -> None:
        async with AsyncHttpClient(policies=make_policies()) as client:
            task = asyncio.create_task(
                client.download(upstream.url(path="/bytes/2000000"), tmp_path / "slow.bin")
            )
            while not started():
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert list(tmp_path.iterdir()) == []
