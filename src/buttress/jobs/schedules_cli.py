"""``buttress schedules``: the stored schedules with their next fire times, last fire and state.

It reads the schedules table of the jobs database (``BUTTRESS_DATABASE_URL``, else the embedded
``buttress.db``), which every scheduler reconciles with its code at start, so it shows what the schedulers
fire, whichever process defined it. Times are shown in each schedule's own time zone.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from rich.table import Table
from rich.text import Text

from buttress._console import FOLD
from buttress.errors import ButtressError
from buttress.jobs._schedule_view import describe_schedules

if TYPE_CHECKING:
    from rich.console import Console

    from buttress.jobs._jobs import Jobs

__all__ = ["schedules_command"]

_EMPTY = "no schedules stored yet: a scheduler (buttress worker) stores the @schedule definitions it imports"


def _when(instant: float | None, tz: str) -> str:
    if instant is None:
        return "-"
    return datetime.fromtimestamp(instant, ZoneInfo(tz)).isoformat(timespec="seconds")


def schedules_command(*, jobs: Jobs, count: int, as_json: bool, console: Console) -> int:
    """Print the schedules (a table, or JSON with epoch seconds); 0, or 1 with the reason printed."""
    try:
        described = describe_schedules(jobs, count=count)
    except ButtressError as exc:
        console.print(Text(f"cannot read the schedules of {jobs.db.urls.masked}: {exc}", style="red"))
        return 1
    if as_json:
        console.out(json.dumps(described, sort_keys=True), highlight=False)
        return 0
    if not described:
        console.print(Text(_EMPTY))
        return 0
    table = Table(title=f"schedules in {jobs.db.urls.masked}", title_justify="left")
    for column in ("name", "spec", "task", "queue", "policies", "active", "last fire", "next fires"):
        table.add_column(column, overflow=FOLD)
    for item in described:
        table.add_row(
            item["name"],
            item["spec"],
            item["task"],
            item["queue"],
            f"catch_up={item['catch_up']} overlap={item['overlap']}",
            "yes" if item["active"] else "no (no longer defined in code)",
            _when(item["last_fire_at"], item["tz"]),
            ", ".join(_when(fire, item["tz"]) for fire in item["next_fires"]) or "-",
        )
    console.print(table)
    return 0
