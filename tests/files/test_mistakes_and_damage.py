"""Callers' mistakes named before anything happens, and damage done outside buttress reported as such."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from buttress.errors import ConflictError, ValidationError
from buttress.files import FileStore, Uploads, upload_route
from buttress.server import install
from tests.files.conftest import leftover_bytes


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda store, saved: store.archive(saved.id, compress="no"), "compress"),
        (lambda store, saved: list(store.stream(saved.id, start="1")), "start"),
        (lambda store, saved: list(store.stream(saved.id, end=-1)), "end"),
        (lambda store, saved: list(store.stream(saved.id, chunk_size=0)), "chunk_size"),
        (lambda store, saved: store.list(after=saved.id), "after"),
        (lambda store, saved: store.list(owner=5), "owner"),
        (lambda store, saved: store.save(b"x\n", name="a.txt", content_type="not a type"), "content_type"),
    ],
)
def test_a_wrong_argument_is_a_validation_error_naming_it(
    store: FileStore, tmp_path: Path, call: object, field: str
) -> None:
    saved = store.save(b"kept\n", name="kept.txt")
    with pytest.raises(ValidationError) as caught:
        call(store, saved)  # type: ignore[operator]
    assert caught.value.field == field
    assert leftover_bytes(tmp_path / "blobs") == saved.size  # nothing written, no archive copy left


def test_bytes_removed_behind_the_stores_back_are_a_corrupt_file_not_a_404(
    store: FileStore, tmp_path: Path
) -> None:
    saved = store.save(b"soon gone\n", name="a.txt")
    (tmp_path / "blobs" / saved.key).unlink()
    for call in (store.read_bytes, store.archive):
        with pytest.raises(ConflictError) as caught:
            call(saved.id)
        assert caught.value.error_code == "file_corrupt"
        assert saved.key not in str(caught.value)  # the storage key stays private
    assert not list((tmp_path / "blobs").rglob("*.gz"))


@pytest.mark.parametrize(
    ("data", "name", "declared", "allowed", "found"),
    [
        (b"a,b\n1,2\n", "table.csv", "text/csv", ["text/csv"], "text/csv"),
        (b"# Title\n\nbody\n", "notes.md", None, ["text/markdown"], "text/markdown"),
        (b"plain words\n", "notes.txt", None, ["text/*"], "text/plain"),
    ],
)
def test_text_named_or_declared_as_a_data_format_is_that_format(  # noqa: PLR0917 - the parameters
    store: FileStore, data: bytes, name: str, declared: str | None, allowed: list[str], found: str
) -> None:
    assert store.save(data, name=name, content_type=declared, allowed_types=allowed).content_type == found


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"allowed_types": ["png"]}, "allowed_types"),
        ({"tags": [1]}, "tags"),
        ({"max_size": "5MB"}, "max_size"),
        ({"max_size": 1.5}, "max_size"),
        ({"max_files": True}, "max_files"),
    ],
)
def test_the_upload_helper_refuses_bad_options_when_the_route_is_defined(
    store: FileStore, options: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Uploads(store, **options)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_an_async_owner_hook_is_awaited(store: FileStore) -> None:
    async def owner(request: Request) -> str:
        return request.headers["x-user"]

    app = FastAPI()
    install(app)
    app.include_router(upload_route(store, owner=owner))

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            return await client.post(
                "/files", files={"file": ("a.txt", b"mine\n")}, headers={"x-user": "ana"}
            )

    response = asyncio.run(post())
    assert response.status_code == 201, response.text
    assert [f.owner for f in store.list()] == ["ana"]
