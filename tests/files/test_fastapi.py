"""The FastAPI upload helper on a real uvicorn server: multipart bodies streamed into a FileStore.

Every refusal (size, type, quota, a client that goes away) leaves nothing behind: no file, no temp data,
no reservation. Memory is measured on a server in a child process (tests/files/_fastapi_server.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI

from buttress.config import Settings
from buttress.db import Database
from buttress.errors import ValidationError
from buttress.files import FileStore, LocalBlobStore
from buttress.files._fastapi import Uploaded, Uploads, upload_route
from buttress.observe.metrics import MetricsRegistry
from buttress.server import PROBLEM_CONTENT_TYPE
from tests.files._fastapi_server import BOUNDARY, PeakRss, file_body, serving, upload_server
from tests.files.conftest import leftover_bytes
from tests.server.conftest import install_isolated

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + b"\x00" * 200
TEXT = b"episode notes\n" * 8000
WAIT_SECONDS = 20.0
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _isolated(isolated_settings: None) -> None:
    """No BUTTRESS_* variables and no .env reach these tests."""


def noise(size: int, *, seed: int) -> bytes:
    """``size`` random-looking bytes that are the same every run: ``os.urandom`` starts with ``MZ`` (an
    executable's magic, refused as dangerous) once in 65,536 files, which failed a run."""
    return random.Random(seed).randbytes(size)


def app_with(route: Any = None, *, expose_details: bool = False) -> FastAPI:
    """A FastAPI app with buttress installed (problem+json errors) and ``route``'s router included."""
    app = FastAPI()
    install_isolated(app, Settings(_env_file=None, server={"expose_details": expose_details}))
    if route is not None:
        app.include_router(route)
    return app


def blobs_root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


def nothing_left(store: FileStore, tmp_path: Path) -> None:
    """No file row, no reservation, no byte of data or temp data, no quota in use."""
    stats = store.stats()
    assert (stats.stored_files, stats.in_flight) == (0, 0)
    assert all(scope.used == 0 and scope.reserved == 0 for scope in stats.usage)
    assert leftover_bytes(blobs_root(tmp_path)) == 0
    assert not list((blobs_root(tmp_path) / ".tmp").iterdir())


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """A bounded wait for something the server does after the client is gone."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def raw_post(url: str, headers: dict[str, str], body: bytes = b"") -> socket.socket:
    """``POST url`` over a bare socket with ``body`` (possibly a part of what the headers declare)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=WAIT_SECONDS)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the one response on ``sock`` (read until the server closes)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["connection"] == "close"
    document: dict[str, Any] = response.json()
    assert (document["status"], document["error_code"]) == (status, code)
    return document


def test_an_upload_is_stored_whole_with_its_hash_and_a_safe_name(store: FileStore, tmp_path: Path) -> None:
    app = app_with(upload_route(store, path="/files"))
    with serving(app) as url:
        response = httpx.post(
            f"{url}/files",
            files={"file": ("../../etc/E\u0301pisode 12.txt", TEXT, "text/plain")},
            data={"caption": "the pilot"},
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["fields"] == {"caption": "the pilot"}
    [sent] = body["files"]
    assert sent["name"] == "\u00c9pisode 12.txt"  # only the base name is kept, in Unicode's NFC form
    assert (sent["size"], sent["sha256"]) == (len(TEXT), hashlib.sha256(TEXT).hexdigest())
    assert sent["content_type"] == "text/plain"
    assert store.read_bytes(sent["id"]) == TEXT
    assert store.stat(sent["id"]).name == sent["name"]
    assert not list((blobs_root(tmp_path) / ".tmp").iterdir())


def test_several_files_and_fields_in_one_request_through_the_dependency(store: FileStore) -> None:
    uploads = Uploads(store, max_files=3, owner=lambda request: request.headers["x-user"], tags=["inbox"])
    app = app_with()

    @app.post("/inbox", status_code=201)
    # Annotated[Uploaded, Depends(uploads)] is the usual spelling; a string annotation cannot see a local.
    async def inbox(upload: Uploaded = Depends(uploads)) -> dict[str, Any]:  # noqa: B008
        return {"ids": [f.id for f in upload.files], "fields": upload.fields}

    big = noise(3 * MIB, seed=1)  # several parser callbacks and store writes
    files: list[tuple[str, tuple[str, bytes, str]]] = [
        ("file", ("a.txt", TEXT, "text/plain")),
        ("file", ("b.bin", big, "application/octet-stream")),
        ("file", ("c.txt", b"hi\n", "text/plain")),
    ]
    with serving(app) as url:
        response = httpx.post(
            f"{url}/inbox", files=files, data={"title": "Ünïcode ✓", "n": "3"}, headers={"x-user": "ana"}
        )
    assert response.status_code == 201, response.text
    assert response.json()["fields"] == {"title": "Ünïcode ✓", "n": "3"}
    stored = [store.stat(file_id) for file_id in response.json()["ids"]]
    assert [f.name for f in stored] == ["a.txt", "b.bin", "c.txt"]  # in the order sent
    assert [store.read_bytes(f.id) for f in stored] == [TEXT, big, b"hi\n"]
    assert {(f.owner, f.tags) for f in stored} == {("ana", ("inbox",))}
    assert store.usage("ana").used == len(TEXT) + len(big) + 3


def test_a_refused_part_undoes_the_files_already_stored_in_the_request(
    store: FileStore, tmp_path: Path
) -> None:
    app = app_with(upload_route(store, max_files=2, max_field_size=1000))
    with serving(app) as url:
        too_long_field = httpx.post(
            f"{url}/files", files=[("file", ("a.txt", TEXT))], data={"note": "x" * 1001}
        )
        one_file_too_many = httpx.post(f"{url}/files", files=[("file", (f"{n}.txt", TEXT)) for n in range(3)])
        wrong_field = httpx.post(
            f"{url}/files", files=[("file", ("a.txt", TEXT)), ("other", ("b.txt", TEXT))]
        )
        no_file = httpx.post(f"{url}/files", files={"x": (None, b"just a field")})
    assert "over 1000 bytes" in problem(too_long_field, 413, "validation_failed")["detail"]
    assert "at most 2 file(s)" in problem(one_file_too_many, 422, "validation_failed")["detail"]
    assert "got a file in 'other'" in problem(wrong_field, 422, "validation_failed")["detail"]
    assert "at least 1 file(s)" in problem(no_file, 422, "validation_failed")["detail"]
    nothing_left(store, tmp_path)


def test_a_body_that_is_not_multipart_is_refused_before_it_is_read(store: FileStore) -> None:
    app = app_with(upload_route(store))
    torn_body = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nab'
    with serving(app) as url:
        as_json = httpx.post(f"{url}/files", json={"file": "data"})
        no_boundary = httpx.post(
            f"{url}/files", content=b"--x--", headers={"content-type": "multipart/form-data"}
        )
        torn = httpx.post(
            f"{url}/files",
            content=torn_body.encode(),
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
    assert "multipart/form-data" in problem(as_json, 415, "unsupported_media_type")["detail"]
    assert "boundary" in problem(no_boundary, 422, "validation_failed")["detail"]
    assert "closing boundary" in problem(torn, 422, "validation_failed")["detail"]
    assert store.stats().stored_files == 0


def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read(
    files_db: Database, tmp_path: Path
) -> None:
    metrics = MetricsRegistry()
    store = FileStore(LocalBlobStore(blobs_root(tmp_path)), db=files_db, metrics=metrics)
    uploads = Uploads(store, max_size=MIB)
    temp = blobs_root(tmp_path) / ".tmp"
    os.utime(temp, ns=(0, 0))  # creating (and removing) any temp file would move the directory's mtime
    app = app_with(upload_route(store, max_size=MIB))
    with serving(app) as url:
        # Headers only: a server that waited for the body would never answer, and one that read it
        # would first send "100 Continue" to a client that expects it.
        sock = raw_post(
            f"{url}/files",
            {
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Content-Length": str(uploads.body_limit() + 1),
                "Expect": "100-continue",
            },
        )
        with sock:
            status, headers, body = read_response(sock)
    assert status == 413  # the first status line: no 100 Continue came before it
    assert headers["connection"] == "close"
    document = json.loads(body)
    assert document["error_code"] == "file_too_large"
    assert str(uploads.body_limit()) in document["detail"]
    assert os.stat(temp).st_mtime_ns == 0  # no temp file was ever created
    nothing_left(store, tmp_path)
    assert b'buttress_files_rejected_total{reason="too_large"} 1.0' in metrics.render_prometheus()


def test_a_chunked_body_is_cut_at_the_limit(store: FileStore, tmp_path: Path) -> None:
    body = file_body(64 * MIB)
    sent = 0

    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        nonlocal sent
        for chunk in body.chunks:
            sent += len(chunk)
            yield chunk

    app = app_with(upload_route(store, max_size=MIB))
    with serving(app) as url:
        started = time.monotonic()
        response = httpx.post(
            f"{url}/files",
            content=chunks(),
            headers={"content-type": body.headers["content-type"]},
            timeout=WAIT_SECONDS,
        )
        elapsed = time.monotonic() - started
    document = problem(response, 413, "file_too_large")
    assert document["detail"].startswith(f"the file is over its {MIB} byte limit")
    assert sent < body.length // 2  # the server answered and closed; the client stopped sending
    assert elapsed < WAIT_SECONDS
    nothing_left(store, tmp_path)


def test_a_spoofed_type_is_refused_and_nothing_is_kept(store: FileStore, tmp_path: Path) -> None:
    app = app_with(upload_route(store, allowed_types=["image/*"], max_files=2))
    with serving(app) as url:
        response = httpx.post(
            f"{url}/files",
            files=[("file", ("ok.txt", TEXT, "text/plain")), ("file", ("photo.jpg", ELF, "image/jpeg"))],
        )
    problem(response, 415, "file_type_rejected")
    nothing_left(store, tmp_path)


def test_a_quota_refusal_says_the_numbers_and_leaves_nothing(store: FileStore, tmp_path: Path) -> None:
    store.set_quota("ana", 3 * MIB)
    app = app_with(upload_route(store, max_size=2 * MIB, owner=lambda request: "ana"), expose_details=True)
    first = noise(MIB + MIB // 2, seed=2)
    with serving(app) as url:
        fits = httpx.post(f"{url}/files", files={"file": ("one.bin", first)})
        exact = httpx.post(f"{url}/files", files={"file": ("two.bin", noise(MIB, seed=3))})
        refused = httpx.post(f"{url}/files", files={"file": ("three.bin", noise(MIB // 2 + 1, seed=4))})
    assert fits.status_code == 201, fits.text
    assert exact.status_code == 201, exact.text  # 1.5 + 1 of 3 MiB: reserved as its bytes came
    document = problem(refused, 429, "quota_exceeded")
    assert document["context"] == {
        "scope": "owner:ana",
        "quota": 3 * MIB,
        "used": len(first) + MIB,
        "reserved": 0,
        "requested": MIB // 2 + 1,  # under 1 MiB, the helper declares the file's length: reserved at once
    }
    assert f"of its {3 * MIB} bytes free" in document["detail"]
    usage = store.usage("ana")
    assert (usage.used, usage.files, usage.reserved) == (len(first) + MIB, 2, 0)
    assert store.stats().in_flight == 0
    assert not list((blobs_root(tmp_path) / ".tmp").iterdir())


def test_a_small_file_reserves_its_own_length_so_a_small_quota_fits_it(store: FileStore) -> None:
    store.set_quota("bo", 100_000)  # far below the store's step for a body of unknown length
    app = app_with(upload_route(store, owner=lambda request: "bo"), expose_details=True)
    with serving(app) as url:
        fits = httpx.post(f"{url}/files", files={"file": ("a.txt", TEXT[:60_000])})
        refused = httpx.post(f"{url}/files", files={"file": ("b.txt", TEXT[:50_000])})
    assert fits.status_code == 201, fits.text
    context = problem(refused, 429, "quota_exceeded")["context"]
    assert (context["quota"], context["used"], context["requested"]) == (100_000, 60_000, 50_000)
    assert (store.usage("bo").used, store.stats().in_flight) == (60_000, 0)


def test_a_client_that_leaves_mid_upload_leaves_nothing_behind(store: FileStore, tmp_path: Path) -> None:
    body = file_body(32 * MIB)
    first_half = b"".join(next(body.chunks) for _ in range(17))  # the part's head and 16 of 32 MiB
    app = app_with(upload_route(store, max_size=64 * MIB))
    with serving(app) as url:
        sock = raw_post(f"{url}/files", body.headers, first_half)
        wait_until(lambda: leftover_bytes(blobs_root(tmp_path)) > 0, "the upload to start writing")
        assert store.stats().in_flight == 1
        sock.close()
        wait_until(lambda: store.stats().in_flight == 0, "the reservation to be released")
        wait_until(lambda: leftover_bytes(blobs_root(tmp_path)) == 0, "the temp data to be removed")
    nothing_left(store, tmp_path)


def test_a_50_mb_upload_is_never_held_in_the_servers_memory(tmp_path: Path) -> None:
    size = 50 * 1000 * 1000
    with upload_server(tmp_path, max_size=size) as server, httpx.Client(timeout=120) as client:
        warm = file_body(MIB)  # the first request imports and allocates what every request needs
        warmed = client.post(f"{server.url}/files", content=warm.chunks, headers=warm.headers)
        assert warmed.status_code == 201
        body = file_body(size)
        with PeakRss(server.process) as peak:
            response = client.post(f"{server.url}/files", content=body.chunks, headers=body.headers)
    assert response.status_code == 201, response.text
    [stored] = response.json()["files"]
    assert stored["size"] == size
    print(f"server RSS grew by {peak.growth / MIB:.1f} MiB")
    assert peak.growth < 32 * MIB, f"server RSS grew by {peak.growth / MIB:.1f} MiB"


def test_the_route_documents_its_multipart_body_and_refusals(store: FileStore) -> None:
    schema = app_with(upload_route(store, path="/files", max_files=4)).openapi()
    operation = schema["paths"]["/files"]["post"]
    body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["file"] == {
        "type": "array",
        "items": {"type": "string", "format": "binary"},
        "maxItems": 4,
    }
    assert body["required"] == ["file"]
    assert {"201", "413", "415", "422", "429"} <= set(operation["responses"])


def test_a_misconfigured_helper_fails_when_the_route_is_defined(store: FileStore) -> None:
    with pytest.raises(ValidationError, match="max_files must be at least 1") as error:
        Uploads(store, max_files=0)
    assert error.value.field == "max_files"
    with pytest.raises(ValidationError, match="not the string 'image/\\*'"):
        Uploads(store, allowed_types="image/*")
    with pytest.raises(ValidationError, match="min_files must lie between 0 and max_files"):
        upload_route(store, max_files=2, min_files=3)


def multipart(*parts: tuple[str, bytes]) -> bytes:
    """A multipart body from (part headers, content) pairs, headers given as one CRLF-joined string."""
    body = b"".join(f"--{BOUNDARY}\r\n{head}\r\n\r\n".encode() + content + b"\r\n" for head, content in parts)
    return body + f"--{BOUNDARY}--\r\n".encode()


def test_an_empty_file_input_is_no_file_and_odd_fields_are_refused(store: FileStore, tmp_path: Path) -> None:
    app = app_with(upload_route(store, min_files=0))
    empty_input = (
        'Content-Disposition: form-data; name="file"; filename=""\r\nContent-Type: application/octet-stream'
    )
    note = 'Content-Disposition: form-data; name="note"'
    cases = {
        "empty": multipart((empty_input, b""), (note, b"no file chosen")),
        "twice": multipart((note, b"a"), (note, b"b")),
        "latin1": multipart((note, "café".encode("latin-1"))),
        "nameless": multipart(("Content-Disposition: form-data", b"x")),
        "attachment": multipart(('Content-Disposition: attachment; name="note"', b"x")),
    }
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    with serving(app) as url:
        answers = {
            case: httpx.post(f"{url}/files", content=body, headers=headers) for case, body in cases.items()
        }
    assert answers["empty"].status_code == 201, answers["empty"].text
    assert answers["empty"].json() == {"files": [], "fields": {"note": "no file chosen"}}
    assert "sent twice" in problem(answers["twice"], 422, "validation_failed")["detail"]
    assert "not UTF-8" in problem(answers["latin1"], 422, "validation_failed")["detail"]
    for case in ("nameless", "attachment"):
        assert "Content-Disposition: form-data" in problem(answers[case], 422, "validation_failed")["detail"]
    nothing_left(store, tmp_path)
