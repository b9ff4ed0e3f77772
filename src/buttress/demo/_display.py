"""The live table while a pass runs: one row per domain, redrawn about 8 times a second.

Redrawn from a task on the demo's own event loop (``auto_refresh=False``), so it reads the outcomes and
the client's counters on the thread that writes them: no locks, no torn rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from buttress.demo._batch import Progress
from buttress.demo._report import percentile
from buttress.http import HostStats

__all__ = ["REFRESH_SECONDS", "live_table", "progress_table"]

REFRESH_SECONDS: Final = 1 / 8


def progress_table(
    title: str, progress: Progress, planned: Mapping[str, int], hosts: Mapping[str, HostStats] | None
) -> Table:
    """The pass so far; ``hosts`` is the buttress client's view (None: blank resilience columns)."""
    now = hosts or {}
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("domain", no_wrap=True)
    headers = ("done", "ok", "failed", "retries", "breaker", "short-\ncircuited", "limiter\nwaits", "p50\nms")
    for header in headers:
        table.add_column(header, justify="left" if header == "breaker" else "right")
    for name, outcomes in progress.by_domain.items():
        ok = sum(1 for outcome in outcomes if outcome.ok)
        p50 = percentile(sorted(outcome.seconds for outcome in outcomes), 0.5)
        stats = now.get(name)
        table.add_row(
            name,
            f"{len(outcomes)}/{planned.get(name, 0)}",
            str(ok),
            str(len(outcomes) - ok),
            "" if stats is None else str(stats.retries),
            "" if stats is None else (stats.breaker_state or "-"),
            "" if stats is None else str(stats.rejected.get("breaker", 0)),
            "" if stats is None else str(stats.limiter_waits),
            "-" if p50 is None else f"{p50 * 1000:.0f}",
        )
    return table


@contextlib.asynccontextmanager
async def live_table(console: Console | None, render: Callable[[], Table]) -> AsyncIterator[None]:
    """Show ``render()`` live on ``console`` while the body runs (nothing when ``console`` is None)."""
    if console is None:
        yield
        return
    with Live(render(), console=console, auto_refresh=False, transient=True) as live:

        async def redraw() -> None:
            while True:
                await asyncio.sleep(REFRESH_SECONDS)
                live.update(render(), refresh=True)

        task = asyncio.create_task(redraw())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
