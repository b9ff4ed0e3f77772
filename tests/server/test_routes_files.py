"""The files on the ops server: ``GET /storage/stats``, ``GET /files`` and the admin archive, restore,
delete and cleanup, on SQLite and PostgreSQL.

Owners' and files' names reach only admins (or development); an anonymous reader gets them as null. A
process that does not use files answers empty, and asking creates neither the database nor the directory.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from buttress.clock import FakeClock
from buttress.container import get_container
from buttress.files import FileStore
from buttress.files._retention import Retention
from tests.files.conftest import clock, files_db, files_url, make_store

from .conftest import ADMIN_TOKEN, bearer, build, client_for, make_settings

__all__ = ["clock", "files_db", "files_url", "make_store"]

DAY = 86400.0
ADMIN = bearer(ADMIN_TOKEN)


def _app(*, admin: bool = True, expose_details: bool = False) -> FastAPI:
    security = {"admin_token": ADMIN_TOKEN} if admin else {}
    settings = make_settings(security=security, server={"expose_details": expose_details})
    return build(settings=settings).app


def _entries(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.fixture
def served(make_store: Callable[..., FileStore], clock: FakeClock) -> Iterator[FileStore]:
    """A store with a retention rule, as the process's FileStore (what the routes read)."""
    base = make_store(quota=1_000_000)
    store = FileStore(
        base.blobs,
        db=base.db,
        settings=base.settings,
        clock=clock,
        retention=[Retention(action="delete", max_age=30 * DAY)],
    )
    with get_container().override(FileStore, store):
        yield store


@pytest.fixture
async def client(served: FileStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(_app()) as http:
        yield http


async def test_anonymous_readers_see_totals_but_no_names(
    served: FileStore, client: httpx.AsyncClient
) -> None:
    saved = served.save(b"episode notes\n", name="ana-secret-plans.txt", owner="ana", tags=["private"])
    served.save(b"more notes\n", name="bo.txt", owner="bo")
    anonymous = (await client.get("/storage/stats")).json()
    assert anonymous["stored"] == {"files": 2, "bytes": saved.size + 11}
    assert anonymous["quota"]["quota"] == 1_000_000
    assert (anonymous["owners"], anonymous["details"]) == (None, False)
    assert "ana" not in str(anonymous)
    admin = (await client.get("/storage/stats", headers=ADMIN)).json()
    assert [o["scope"] for o in admin["owners"]] == ["owner:ana", "owner:bo"]
    listed = (await client.get("/files")).json()
    assert {row["size"] for row in listed["files"]} == {saved.size, 11}
    for row in listed["files"]:
        assert (row["name"], row["owner"], row["tags"], row["metadata"], row["details"]) == (None,) * 4 + (
            False,
        )
    assert "ana" not in str(listed)
    shown = (await client.get("/files", params={"owner": "ana"}, headers=ADMIN)).json()
    assert [(row["name"], row["tags"]) for row in shown["files"]] == [("ana-secret-plans.txt", ["private"])]
    async with client_for(_app(admin=False, expose_details=True)) as development:
        assert (await development.get("/files")).json()["files"][0]["details"] is True


async def test_the_list_pages_newest_first(
    served: FileStore, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    made = []
    for index in range(5):
        made.append(served.save(b"%d\n" % index, name=f"{index}.txt"))
        clock.advance(1)
    first = (await client.get("/files", params={"limit": 2})).json()
    assert [row["id"] for row in first["files"]] == [made[4].id, made[3].id]
    second = (await client.get("/files", params={"limit": 2, "after": first["next_after"]})).json()
    assert [row["id"] for row in second["files"]] == [made[2].id, made[1].id]
    third = (await client.get("/files", params={"limit": 2, "after": second["next_after"]})).json()
    assert ([row["id"] for row in third["files"]], third["next_after"]) == ([made[0].id], None)
    served.archive(made[0].id)
    archived = (await client.get("/files", params={"state": "archived"})).json()
    assert [row["id"] for row in archived["files"]] == [made[0].id]
    gone = await client.get("/files", params={"after": uuid.uuid4().hex})
    assert gone.status_code == 404
    assert (await client.get("/files", params={"state": "lost"})).status_code == 422


async def test_admins_archive_restore_and_delete(
    served: FileStore, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    saved = served.save(b"keep me safe\n", name="keep.txt", owner="ana")
    assert (await client.post(f"/files/{saved.id}/archive")).status_code == 401
    archived = await client.post(f"/files/{saved.id}/archive", headers=ADMIN)
    assert archived.status_code == 200
    assert (archived.json()["state"], archived.json()["name"]) == ("archived", "keep.txt")
    restored = await client.post(f"/files/{saved.id}/restore", headers=ADMIN)
    assert restored.json()["state"] == "stored"
    assert served.read_bytes(saved.id) == b"keep me safe\n"
    deleted = await client.delete(f"/files/{saved.id}", headers=ADMIN)
    assert deleted.json() == {"id": saved.id, "deleted": True}
    assert served.list() == []
    again = await client.delete(f"/files/{saved.id}", headers=ADMIN)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"
    assert (await client.post("/files/not-an-id/archive", headers=ADMIN)).status_code == 422


async def test_the_cleanup_runs_the_stores_rules_dry_run_first(
    served: FileStore, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    old = served.save(b"old\n", name="old.txt")
    clock.advance(40 * DAY)
    young = served.save(b"young\n", name="young.txt")
    assert (await client.post("/storage/cleanup")).status_code == 401
    dry = (await client.post("/storage/cleanup", params={"dry_run": "true"}, headers=ADMIN)).json()
    assert (dry["dry_run"], dry["deleted"], dry["actions_total"]) == (True, 1, 1)
    assert [(a["file_id"], a["outcome"]) for a in dry["actions"]] == [(old.id, "planned")]
    assert len(served.list()) == 2
    real = (await client.post("/storage/cleanup", headers=ADMIN)).json()
    assert (real["deleted"], real["errors"], real["actions"][0]["outcome"]) == (1, 0, "done")
    assert [f.id for f in served.list()] == [young.id]


async def test_a_process_without_files_answers_empty_and_creates_nothing(tmp_path: Path) -> None:
    assert Path.cwd() == tmp_path  # the isolated working directory: where the defaults would go
    async with client_for(_app()) as http:
        stats = await http.get("/storage/stats")
        assert stats.status_code == 200
        assert (stats.json()["stored"], stats.json()["in_flight"]) == ({"files": 0, "bytes": 0}, 0)
        assert (await http.get("/files")).json() == {"files": [], "next_after": None}
        missing = await http.post(f"/files/{uuid.uuid4().hex}/archive", headers=ADMIN)
        assert missing.status_code == 404
        cleanup = await http.post("/storage/cleanup", headers=ADMIN)
        assert (cleanup.status_code, cleanup.json()["actions_total"]) == (200, 0)
    assert _entries(tmp_path) == []  # no buttress.db, no buttress-files/
    assert get_container().peek(FileStore) is None
