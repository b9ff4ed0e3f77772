"""``buttress db upgrade`` and ``buttress db status``: buttress's own tables on the configured database.

Both open the database of the settings (``BUTTRESS_DATABASE_URL``, else the embedded ``buttress.db`` in the
working directory) in this process. ``upgrade --sql`` prints the statements for review and connects to
nothing.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.text import Text

from buttress.db._database import Database
from buttress.db._migration_status import MigrationStatus
from buttress.errors import ButtressError

__all__ = ["status_command", "upgrade_command"]


def _describe(status: MigrationStatus) -> str:
    where = status.current or "nothing yet"
    if status.up_to_date:
        return f"at {where}, the head: up to date"
    return f"at {where}; head {status.head}; pending: {', '.join(status.pending)}"


def _as_json(status: MigrationStatus) -> str:
    return json.dumps(
        {"current": status.current, "head": status.head, "pending": list(status.pending)}, sort_keys=True
    )


def upgrade_command(*, revision: str, sql: bool, as_json: bool, console: Console) -> int:
    """Upgrade (or with ``sql``, print the SQL of an upgrade); 0 on success, 1 with the reason printed."""
    db = Database()
    try:
        if sql:
            console.out(db.upgrade_sql(revision), end="", highlight=False)
            return 0
        status = db.upgrade(revision)
    except ButtressError as exc:
        console.print(Text(f"upgrade failed on {db.urls.masked}: {exc}", style="red"))
        return 1
    finally:
        db.close()
    console.out(_as_json(status) if as_json else f"{db.urls.masked}: {_describe(status)}", highlight=False)
    return 0


def status_command(*, as_json: bool, console: Console) -> int:
    """Print where the database stands; exit 0 when up to date, 2 when revisions are pending, 1 on failure."""
    db = Database()
    try:
        status = db.migration_status()
    except ButtressError as exc:
        console.print(Text(f"cannot read the schema version of {db.urls.masked}: {exc}", style="red"))
        return 1
    finally:
        db.close()
    console.out(_as_json(status) if as_json else f"{db.urls.masked}: {_describe(status)}", highlight=False)
    return 0 if status.up_to_date else 2
