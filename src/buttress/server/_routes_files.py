"""Files on the ops server: storage statistics and the file list; archive, restore, delete, cleanup (admin).

``GET /storage/stats`` (``FileStore.stats()``) and ``GET /files`` (newest first, filtered by owner, tag
and state, paged by ``after``: the last file's id) read the process's
:class:`~buttress.files.FileStore`. Owners' names, file names, tags and metadata can say who a user is,
so they are shown only in development (``expose_details``) or to a caller with valid admin credentials;
anonymous readers get them as null, with ``details: false``. ``POST /files/{id}/archive``,
``/files/{id}/restore``, ``DELETE /files/{id}`` and ``POST /storage/cleanup`` exist only when admin auth
is configured, like every admin endpoint; the cleanup sweeps, then applies the rules of the process's
scheduled cleanup (``schedule_cleanup``), else the store's ``retention`` (``dry_run=true``: lists what it
would do, changing nothing).

The routes describe the files only where files are in use: the process built its ``FileStore``, or the
store's directory exists (or ``files.url`` is a bucket) and so does its database. Otherwise the totals
are zero, the list is empty and a file id is a 404: asking never creates the embedded SQLite file or
the files directory. ``buttress.files`` (libmagic) is imported only when a route needs it.
"""

# No `from __future__ import annotations`: FastAPI evaluates the endpoint annotations.

import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from buttress._bearer import AdminIdentity
from buttress.config import Settings
from buttress.container import get_container
from buttress.db import DEFAULT_URL
from buttress.errors import NotFoundError
from buttress.server._ops import Ops
from buttress.server._problems import problem_responses

if TYPE_CHECKING:
    from buttress.files import FileStore, StoredFile

__all__ = [
    "CleanupView",
    "FileList",
    "FileView",
    "StorageStatsView",
    "files_admin_router",
    "files_installed",
    "files_router",
]

_log = logging.getLogger("buttress.server")
_HIDDEN = ("name", "owner", "tags", "metadata")
"""What an anonymous reader does not see of a file: who it belongs to and what it is called."""
_ACTIONS_SHOWN = 1000
_FileId = Annotated[str, PathParam(pattern="^[0-9a-f]{32}$", description="The file's 32-hex id.")]


def files_installed() -> bool:
    """Whether the ``[files]`` extra is there (looked up without importing libmagic)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("magic", "filetype"))
    except ImportError:  # a meta path finder that refuses it outright
        return False


class ScopeView(BaseModel):
    """One quota scope: settled bytes and files, bytes reserved by saves in flight, quota and free."""

    scope: str | None = Field(description="``*`` for the store, ``owner:<name>`` (null without details).")
    used: int
    files: int
    reserved: int
    quota: int | None
    free: int | None


class CountView(BaseModel):
    files: int
    bytes: int


class StorageStatsView(BaseModel):
    """Files and bytes by state, the store's quota, owners' quotas, saves in flight, where bytes live."""

    stored: CountView
    archived: CountView
    in_flight: int
    quota: ScopeView
    owners: list[ScopeView] | None = Field(description="Each owner's scope (null without details).")
    location: dict[str, str]
    details: bool = Field(description="Whether owners are shown.")


class FileView(BaseModel):
    """One file as the ops server shows it (times in epoch seconds)."""

    id: str
    name: str | None = Field(description="The sanitised original name (null without details).")
    owner: str | None = Field(description="Null for no owner, or without details.")
    content_type: str
    size: int
    sha256: str
    state: Literal["stored", "archived"]
    tags: list[str] | None = Field(description="Null without details.")
    metadata: dict[str, str] | None = Field(description="Null without details.")
    created_at: float
    accessed_at: float
    archived_at: float | None
    details: bool = Field(description="Whether name, owner, tags and metadata are shown.")


class FileList(BaseModel):
    """A page of files, newest first; pass ``next_after`` as ``after`` for the next page."""

    files: list[FileView]
    next_after: str | None = Field(description="Null on the last page.")


class Deleted(BaseModel):
    id: str
    deleted: bool


class SweepView(BaseModel):
    reservations: int
    leftovers: int
    orphans: int
    freed_bytes: int


class ActionView(BaseModel):
    file_id: str
    name: str
    owner: str | None
    size: int
    action: Literal["archive", "delete", "purge"]
    rule: int
    reason: str
    outcome: Literal["planned", "done", "raced", "error"]
    error: str | None


class CleanupView(BaseModel):
    """What a cleanup did (or, in a dry run, would do): counts, the sweep, the first 1000 actions."""

    dry_run: bool
    archived: int
    deleted: int
    purged: int
    raced: int = Field(description="Files someone else changed first (not errors).")
    errors: int
    bytes_freed: int
    bytes_archived: int
    seconds: float
    sweep: SweepView
    actions: list[ActionView]
    actions_total: int


def _embedded_exists() -> bool:
    return Path(DEFAULT_URL.removeprefix("sqlite:///")).is_file()


def _configured(settings: Settings) -> bool:
    url = settings.files.url
    stored = url.startswith("s3://") or Path(url.removeprefix("file://")).is_dir()
    return stored and (bool(settings.database_url) or _embedded_exists())


def files_in_use(ops: Ops) -> "FileStore | None":
    """The process's ``FileStore`` if files are in use here (see the module docstring), else None."""
    files = sys.modules.get("buttress.files")
    store = None if files is None else get_container().peek(files.FileStore)
    if store is None and _configured(ops.settings):
        from buttress.files import get_files  # noqa: PLC0415 - libmagic, only once files are in use

        store = get_files()
    return store


def _not_found(file_id: str) -> NotFoundError:
    return NotFoundError(
        "file",
        file_id,
        message=f"no file {file_id}: files are not in use in this process",
        context={"file_id": file_id},
    )


def file_view(item: "StoredFile", *, details: bool) -> dict[str, Any]:
    """``item`` as the ops API shows it; without ``details`` its name, owner, tags and metadata are null."""
    data = item.to_dict()
    if not details:
        data.update(dict.fromkeys(_HIDDEN))
    data["details"] = details
    return data


def _empty_stats(settings: Settings) -> dict[str, Any]:
    quota = None if settings.files.quota is None else int(settings.files.quota)
    whole = {"scope": "*", "used": 0, "files": 0, "reserved": 0, "quota": quota, "free": quota}
    none = {"files": 0, "bytes": 0}
    return {"stored": none, "archived": none, "in_flight": 0, "quota": whole, "owners": [], "location": {}}


def files_router(ops: Ops, route_class: type, optional_admin: Any) -> APIRouter:
    router = APIRouter(tags=["files"], route_class=route_class)
    admin_problems = problem_responses(401) if ops.auth.configured else {}
    optional_security: dict[str, Any] | None = {"security": [{}]} if ops.auth.configured else None
    Identity = Annotated[AdminIdentity | None, Depends(optional_admin)]  # noqa: N806 - a type alias

    def details(identity: AdminIdentity | None) -> bool:
        return ops.expose_details or identity is not None

    @router.get(
        "/storage/stats",
        summary="Storage statistics",
        response_model=StorageStatsView,
        responses={**admin_problems, **problem_responses(503)},
        openapi_extra=optional_security,
    )
    def storage_stats(identity: Identity) -> Any:
        """Files and bytes by state, quota use, saves in flight; owners only with details."""
        store = files_in_use(ops)
        data = store.stats().to_dict() if store is not None else _empty_stats(ops.settings)
        shown = details(identity)
        if not shown:
            data["owners"] = None
        data["details"] = shown
        return data

    @router.get(
        "/files",
        summary="Files",
        response_model=FileList,
        responses={**admin_problems, **problem_responses(404, 422, 503)},
        openapi_extra=optional_security,
    )
    def list_files(
        *,
        identity: Identity,
        owner: Annotated[str | None, Query(max_length=200, description="Only this owner's files.")] = None,
        tag: Annotated[str | None, Query(max_length=200, description="Only files with this tag.")] = None,
        state: Annotated[Literal["stored", "archived"] | None, Query(description="Only files in it.")] = None,
        after: Annotated[
            str | None, Query(pattern="^[0-9a-f]{32}$", description="The previous page's last file id.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many files.")] = 100,
    ) -> Any:
        """Files newest first, filtered; names, owners, tags and metadata only with details. A page
        cursor naming a file deleted meanwhile is a 404 (start again from the first page)."""
        store = files_in_use(ops)
        if store is None:
            if after is not None:
                raise _not_found(after)
            return {"files": [], "next_after": None}
        last = None if after is None else store.stat(after)
        found = store.list(owner=owner, tag=tag, state=state, limit=limit, after=last)
        shown = details(identity)
        return {
            "files": [file_view(item, details=shown) for item in found],
            "next_after": found[-1].id if len(found) == limit else None,
        }

    return router


def files_admin_router(ops: Ops, route_class: type, require_admin: Any) -> APIRouter:
    responses = problem_responses(401, 404, 409, 422, 503)
    responses[409]["description"] = "The file's bytes do not match its sha256 (the problem says which)."
    router = APIRouter(
        tags=["admin"],
        route_class=route_class,
        dependencies=[Depends(require_admin)],
        responses=responses,
    )

    def found(file_id: str) -> "FileStore":
        store = files_in_use(ops)
        if store is None:
            raise _not_found(file_id)
        return store

    @router.post("/files/{file_id}/archive", summary="Archive a file", response_model=FileView)
    def archive(file_id: _FileId) -> Any:
        """Move a stored file's bytes to the archive (gzipped unless ``files.archive_compress`` is off);
        an archived file answers as it is (idempotent)."""
        item = found(file_id).archive(file_id)
        _log.warning("file %s archived by admin", file_id)
        return file_view(item, details=True)

    @router.post("/files/{file_id}/restore", summary="Restore a file", response_model=FileView)
    def restore(file_id: _FileId) -> Any:
        """Bring an archived file back, its sha256 checked; a stored file answers as it is."""
        item = found(file_id).restore(file_id)
        _log.warning("file %s restored by admin", file_id)
        return file_view(item, details=True)

    @router.delete("/files/{file_id}", summary="Delete a file", response_model=Deleted)
    def delete(file_id: _FileId) -> Deleted:
        """Remove a file (stored or archived), its bytes and its share of the quota."""
        if not found(file_id).delete(file_id):
            raise NotFoundError("file", file_id, context={"file_id": file_id})  # deleted meanwhile
        _log.warning("file %s deleted by admin", file_id)
        return Deleted(id=file_id, deleted=True)

    @router.post("/storage/cleanup", summary="Clean up the store", response_model=CleanupView)
    def cleanup(
        dry_run: Annotated[bool, Query(description="List what would be done; change nothing.")] = False,
        limit: Annotated[
            int | None, Query(ge=1, le=1_000_000, description="At most this many files.")
        ] = None,
    ) -> Any:
        """Sweep abandoned saves, then apply the store's retention rules (the first 1000 actions are
        listed; ``actions_total`` counts them all)."""
        store = files_in_use(ops)
        if store is None:
            zero = {"reservations": 0, "leftovers": 0, "orphans": 0, "freed_bytes": 0}
            counts = dict.fromkeys(("archived", "deleted", "purged", "raced", "errors"), 0)
            return {
                "dry_run": dry_run,
                **counts,
                "bytes_freed": 0,
                "bytes_archived": 0,
                "seconds": 0.0,
                "sweep": zero,
                "actions": [],
                "actions_total": 0,
            }
        from buttress.files import scheduled_rules  # noqa: PLC0415 - libmagic, only when files are in use

        report = store.cleanup(dry_run=dry_run, limit=limit, rules=scheduled_rules())
        if not dry_run:
            _log.warning("files cleanup by admin: %s", report.summary())
        return report.to_dict(max_actions=_ACTIONS_SHOWN)

    return router
