"""The files' rows, written once as plans: read, list, delete, archive, restore, usage and quotas.

The row is what makes a file exist. Deleting one takes its bytes out of the quota counters in the same
transaction; archiving and restoring move the row between states while the bytes move in the blob store
(the store copies first and updates the row after, so a crash leaves an extra copy, never a lost one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text

from buttress.db import Plan, Step
from buttress.errors import NotFoundError
from buttress.files._info import ALIASED_COLUMNS, COLUMNS, FileState, StoredFile, stored_file
from buttress.files._reservations import GLOBAL, Limits, lock_scopes, scopes_of

__all__ = [
    "Listing",
    "ScopeUsage",
    "archived_plan",
    "delete_plan",
    "get_plan",
    "list_plan",
    "restored_plan",
    "set_quota_plan",
    "touch_plan",
    "usage_plan",
]

_TAGS_OF = text("SELECT file_id, tag FROM buttress_file_tags WHERE file_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


def _with_tags(rows: Sequence[Sequence[Any]]) -> Plan[list[StoredFile]]:
    if not rows:
        return []
    tag_rows = yield Step(_TAGS_OF, {"ids": [row[0] for row in rows]}, rows=True)
    tags: defaultdict[str, list[str]] = defaultdict(list)
    for file_id, tag in tag_rows:
        tags[file_id].append(tag)
    return [stored_file(row, tags[row[0]]) for row in rows]


def get_plan(file_id: str) -> Plan[StoredFile]:
    """The file ``file_id``, or ``NotFoundError``."""
    rows = yield Step(
        text(f"SELECT {COLUMNS} FROM buttress_files WHERE id = :id"), {"id": file_id}, rows=True
    )
    if not rows:
        raise NotFoundError("file", file_id)
    found = yield from _with_tags(rows)
    return found[0]


def touch_plan(file_id: str, now: float) -> Plan[None]:
    """Record a read (retention's least-recently-used rule reads ``accessed_at``)."""
    yield Step(
        text("UPDATE buttress_files SET accessed_at = :now WHERE id = :id"), {"now": now, "id": file_id}
    )


@dataclass(frozen=True, slots=True)
class Listing:
    """Which files to list: filters, newest first, and a keyset cursor ``(created_at, id)``."""

    owner: str | None = None
    tag: str | None = None
    state: FileState | None = None
    older_than: float | None = None
    limit: int = 100
    after: tuple[float, str] | None = None


def list_plan(listing: Listing) -> Plan[list[StoredFile]]:
    """Files matching ``listing``, newest first."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": listing.limit}
    if listing.owner is not None:
        where.append("f.owner = :owner")
        params["owner"] = listing.owner
    if listing.state is not None:
        where.append("f.state = :state")
        params["state"] = listing.state
    if listing.tag is not None:
        where.append("EXISTS (SELECT 1 FROM buttress_file_tags t WHERE t.file_id = f.id AND t.tag = :tag)")
        params["tag"] = listing.tag
    if listing.older_than is not None:
        where.append("f.created_at < :older_than")
        params["older_than"] = listing.older_than
    if listing.after is not None:
        where.append("(f.created_at < :after_at OR (f.created_at = :after_at AND f.id < :after_id))")
        params["after_at"], params["after_id"] = listing.after
    rows = yield Step(
        text(
            f"SELECT {ALIASED_COLUMNS} FROM buttress_files f WHERE {' AND '.join(where)} "
            "ORDER BY f.created_at DESC, f.id DESC LIMIT :limit"
        ),
        params,
        rows=True,
    )
    found = yield from _with_tags(rows)
    return found


def delete_plan(file_id: str, *, postgres: bool = False) -> Plan[StoredFile | None]:
    """Remove the file's row and take its bytes out of the counters; None when it was not there."""
    rows = yield Step(
        text(f"SELECT {COLUMNS} FROM buttress_files WHERE id = :id"), {"id": file_id}, rows=True
    )
    if not rows:
        return None
    yield from lock_scopes(scopes_of(rows[0][2]), postgres=postgres)
    found = yield from _with_tags(rows)
    gone = found[0]
    yield Step(text("DELETE FROM buttress_file_tags WHERE file_id = :id"), {"id": file_id})
    if not (yield Step(text("DELETE FROM buttress_files WHERE id = :id"), {"id": file_id})):
        return None  # a concurrent delete removed it after our read: it took the bytes off the counters
    yield Step(
        text(
            "UPDATE buttress_file_usage SET used = used - :size, files = files - 1 WHERE scope IN :scopes"
        ).bindparams(bindparam("scopes", expanding=True)),
        {"size": gone.size, "scopes": list(scopes_of(gone.owner))},
    )
    return gone


def archived_plan(file_id: str, archive_key: str, compressed: bool, now: float) -> Plan[bool]:
    """Mark a stored file archived under ``archive_key``; False when it is no longer stored."""
    count = yield Step(
        text(
            "UPDATE buttress_files SET state = 'archived', archive_key = :archive_key, "
            "compressed = :compressed, archived_at = :now WHERE id = :id AND state = 'stored'"
        ),
        {"archive_key": archive_key, "compressed": int(compressed), "now": now, "id": file_id},
    )
    return bool(count)


def restored_plan(file_id: str, now: float) -> Plan[bool]:
    """Mark an archived file stored again; False when it is no longer archived."""
    count = yield Step(
        text(
            "UPDATE buttress_files SET state = 'stored', archive_key = NULL, compressed = 0, "
            "archived_at = NULL, accessed_at = :now WHERE id = :id AND state = 'archived'"
        ),
        {"now": now, "id": file_id},
    )
    return bool(count)


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    """One quota scope's counters: settled bytes and files, bytes reserved in flight, the quota."""

    scope: str
    used: int
    files: int
    reserved: int
    quota: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "used": self.used,
            "files": self.files,
            "reserved": self.reserved,
            "quota": self.quota,
            "free": None if self.quota is None else max(0, self.quota - self.used - self.reserved),
        }


def usage_plan(limits: Limits, owners: Sequence[str] | None = None) -> Plan[list[ScopeUsage]]:
    """The counters of the store (scope ``*``) and of ``owners`` (None: every owner), quotas resolved."""
    if owners is None:
        rows = yield Step(
            text("SELECT scope, used, files, reserved, quota FROM buttress_file_usage ORDER BY scope"),
            rows=True,
        )
    else:
        rows = yield Step(
            text(
                "SELECT scope, used, files, reserved, quota FROM buttress_file_usage WHERE scope IN :scopes "
                "ORDER BY scope"
            ).bindparams(bindparam("scopes", expanding=True)),
            {"scopes": [GLOBAL, *(f"owner:{owner}" for owner in owners)]},
            rows=True,
        )
    found = {row[0]: row for row in rows}
    wanted = [GLOBAL, *found] if owners is None else [GLOBAL, *(f"owner:{owner}" for owner in owners)]
    usage = []
    for scope in dict.fromkeys(wanted):
        row = found.get(scope)
        override = None if row is None or row[4] is None else int(row[4])
        quota = override if override is not None else limits.default_for(scope)
        if row is None:
            usage.append(ScopeUsage(scope, 0, 0, 0, quota))
        else:
            usage.append(ScopeUsage(scope, int(row[1]), int(row[2]), int(row[3]), quota))
    return usage


def set_quota_plan(scope: str, quota: int | None) -> Plan[None]:
    """Give ``scope`` its own quota (None: back to the settings' figure)."""
    yield Step(
        text("INSERT INTO buttress_file_usage (scope) VALUES (:scope) ON CONFLICT (scope) DO NOTHING"),
        {"scope": scope},
    )
    yield Step(
        text("UPDATE buttress_file_usage SET quota = :quota WHERE scope = :scope"),
        {"quota": quota, "scope": scope},
    )
