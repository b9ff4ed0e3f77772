"""The live view: one line per episode (status, progress, the worker running it) and the demo's events."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from buttress.jobs import JobInfo

__all__ = ["view"]

_STYLE = {
    "queued": "dim", "running": "cyan", "retrying": "yellow", "succeeded": "green",
    "failed": "red", "dead": "red", "cancelled": "magenta",
}  # fmt: skip
MAX_ROWS = 30


def view(
    names: Mapping[int, str],
    infos: Mapping[int, JobInfo],
    *,
    pids: Mapping[int, int],
    events: Sequence[str],
    started: float,
    dashboard: str,
) -> RenderableType:
    """The table of jobs (the first ``MAX_ROWS``), then the events, newest last."""
    table = Table(
        title=f"podpromo jobs, {time.monotonic() - started:4.1f} s   dashboard: {dashboard}", expand=True
    )
    for column in ("job", "episode", "prio", "status", "progress", "step", "pid"):
        table.add_column(column, no_wrap=True)
    for job_id, name in list(names.items())[:MAX_ROWS]:
        info = infos.get(job_id)
        if info is None:
            continue
        status = info.status.value
        table.add_row(
            str(job_id),
            name,
            str(info.priority),
            Text(status, style=_STYLE.get(status, "")),
            ProgressBar(total=1.0, completed=info.progress or 0.0, width=20),
            info.message or "",
            str(pids.get(job_id, "")),
        )
    if len(names) > MAX_ROWS:
        table.caption = f"... and {len(names) - MAX_ROWS} more"
    return Group(table, *(Text(line) for line in events[-6:]))
