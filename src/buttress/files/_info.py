"""What the catalog says about a file: :class:`StoredFile`, and the row it is read from."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = ["ALIASED_COLUMNS", "COLUMNS", "FileState", "StoredFile", "stored_file"]

FileState = Literal["stored", "archived"]
COLUMNS: Final = (
    "id, key, owner, name, content_type, size, sha256, state, archive_key, compressed, metadata, "
    "created_at, accessed_at, archived_at"
)
ALIASED_COLUMNS: Final = ", ".join(f"f.{name.strip()}" for name in COLUMNS.split(","))
""":data:`COLUMNS` of ``buttress_files f``, for statements that join or filter on the alias."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file in the store: its id, where its bytes are, and what was learned while saving it.

    ``name`` is the sanitised original name (metadata only: the bytes live under ``key``, which buttress
    generates). ``content_type`` is the type found in the content, not the one the client declared.
    ``state`` is ``stored``, or ``archived`` (the bytes moved to the archive, under ``archive_key``).
    """

    id: str
    key: str
    name: str
    owner: str | None
    content_type: str
    size: int
    sha256: str
    state: FileState
    created_at: float
    accessed_at: float
    archived_at: float | None = None
    archive_key: str | None = None
    compressed: bool = False
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for routes and the CLI)."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "state": self.state,
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
            "created_at": self.created_at,
            "accessed_at": self.accessed_at,
            "archived_at": self.archived_at,
        }


def stored_file(row: Sequence[Any], tags: Sequence[str] = ()) -> StoredFile:
    """A :class:`StoredFile` from a row of :data:`COLUMNS`."""
    (ident, key, owner, name, content_type, size, sha256, state, archive_key, compressed, metadata,
     created_at, accessed_at, archived_at) = row  # fmt: skip
    return StoredFile(
        id=ident,
        key=key,
        name=name,
        owner=owner,
        content_type=content_type,
        size=int(size),
        sha256=sha256,
        state=state,
        created_at=created_at,
        accessed_at=accessed_at,
        archived_at=archived_at,
        archive_key=archive_key,
        compressed=bool(compressed),
        tags=tuple(sorted(tags)),
        metadata=json.loads(metadata),
    )
