"""Where a database stands against buttress's revisions (no alembic import: the names load cheaply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["VERSION_TABLE", "MigrationStatus"]

VERSION_TABLE: Final = "buttress_alembic_version"
"""buttress's alembic version table, apart from an app's own ``alembic_version``."""


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """Where a database stands: the revision it is at (None before any upgrade), the head, what is pending."""

    current: str | None
    head: str
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending
