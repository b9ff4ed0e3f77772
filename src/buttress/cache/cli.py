"""``buttress cache warm`` and ``buttress cache stats``.

``warm`` runs the warmers in this process, so it first imports the modules that register them
(``--module``/``-m``, repeatable; the working directory is importable, as with ``python -m``), then runs
every warmer (or the ones named) with a progress bar, and exits 1 if one failed. ``stats`` asks a running
service's ops server (``GET /cache/stats``, wherever the routes are mounted): the counters live in the
service's processes, not here.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from buttress._console import FOLD, cli_console
from buttress._ops_client import OpsClient
from buttress.cache._warm import WarmProgress, WarmResult, run_all_warmers, warmer_caches
from buttress.errors import ButtressError

__all__ = ["stats_command", "warm_command"]


def _import_modules(modules: Sequence[str], console: Console) -> bool:
    """Import each module (the working directory first on the path); False after printing why not."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's module may raise anything; say what and stop
            console.print(
                Text(f"cannot import module {module!r} (--module): {type(exc).__name__}: {exc}", style="red")
            )
            return False
    return True


class _Bar:
    """A rich progress bar with one row per warmer, fed by the warmers' progress callbacks."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: WarmProgress) -> None:
        if event.phase == "started":
            self.tasks[event.name] = self.progress.add_task(event.name, total=None)
            return
        task = self.tasks[event.name]
        if event.phase == "progress":
            self.progress.update(task, completed=event.done, total=event.total)
        elif event.phase == "finished":
            self.progress.update(task, completed=event.done, total=event.total or event.done)
        else:
            self.progress.update(
                task, description=f"[red]{event.name} (failed)[/red]", total=event.total or 1
            )


def warm_command(
    *,
    names: Sequence[str] | None = None,
    modules: Sequence[str] = (),
    as_json: bool = False,
    console: Console | None = None,
    err_console: Console | None = None,
) -> int:
    """Import ``modules``, run the warmers (all, or ``names``) with a progress bar; the exit code."""
    console = console or cli_console()
    err_console = err_console or cli_console(stderr=True)
    if not _import_modules(modules, err_console):
        return 1
    if not warmer_caches():
        err_console.print(
            Text(
                "no cache warmers are registered: pass --module/-m with the module that registers them "
                "(@cache.warmer('name')), e.g. buttress cache warm -m myapp.cache",
                style="red",
            )
        )
        return 1
    bar = _Bar(err_console if as_json else console)  # with --json, stdout carries the JSON only
    try:
        with bar.progress:
            results = run_all_warmers(names or None, progress=bar)
    except ButtressError as exc:  # unknown names, or a run already in progress
        err_console.print(Text(exc.message, style="red"))
        return 1
    if as_json:
        console.print_json(json.dumps([result.to_dict() for result in results]))
    else:
        console.print(_results_table(results))
    return 1 if any(result.outcome == "failed" for result in results) else 0


def _results_table(results: Sequence[WarmResult]) -> Table:
    failed = sum(1 for result in results if result.outcome == "failed")
    title = f"{len(results)} cache warmer{'s' if len(results) != 1 else ''}" + (
        f", {failed} failed" if failed else ""
    )
    table = Table(title=title, title_justify="left")
    for column in ("warmer", "outcome", "items", "seconds", "error"):
        table.add_column(column, justify="right" if column in ("items", "seconds") else "left", overflow=FOLD)
    for result in results:
        style = "green" if result.outcome == "ok" else "red"
        table.add_row(
            Text(result.name),
            f"[{style}]{result.outcome}[/]",
            str(result.items),
            f"{result.seconds:.2f}",
            Text(result.error or ""),
        )
    return table


def stats_command(
    *,
    url: str,
    as_json: bool = False,
    console: Console | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Print the cache stats of the ops server at ``url``; the exit code."""
    console = console or cli_console()
    with OpsClient(url, console, transport=transport) as ops:
        document: dict[str, Any] | None = ops.get_json("/cache/stats")
    if document is None:
        return 1
    if as_json:
        console.print_json(json.dumps(document))
        return 0
    console.print(render_stats(document))
    return 0


def _ms(latency: dict[str, Any], quantile: str) -> str:
    value = latency.get(quantile)
    return "-" if value is None else f"{value * 1000:.2f}"


def _optional(value: object) -> str:
    return "-" if value is None else str(value)


def render_stats(document: dict[str, Any]) -> Group:
    """The backend line, the namespaces table, the warmers and the recommendations."""
    backend = document.get("backend", {})
    state = "[green]available[/]" if backend.get("available") else "[yellow]degraded[/]"
    reason = f" ({backend['reason']})" if backend.get("reason") else ""
    header = f"cache backend: {backend.get('name')} {state}{reason}; {backend.get('detail', '')}"
    table = Table(title="cache namespaces", title_justify="left")
    columns = (
        "namespace",
        "hit rate",
        "hits",
        "misses",
        "stale",
        "sets",
        "entries",
        "evictions",
        "expired unread",
    )
    for column in (*columns, "get p50 ms", "get p99 ms"):
        table.add_column(column, justify="left" if column == "namespace" else "right", overflow=FOLD)
    for row in document.get("namespaces", []):
        rate = row.get("hit_rate")
        table.add_row(
            Text(str(row.get("namespace"))),
            "-" if rate is None else f"{rate:.1%}",
            str(row.get("hits", 0)),
            str(row.get("misses", 0)),
            str(row.get("stale_hits", 0)),
            str(row.get("sets", 0)),
            _optional(row.get("entries")),
            _optional(row.get("evictions")),
            _optional(row.get("expired_unread")),
            _ms(row.get("get_latency", {}), "p50"),
            _ms(row.get("get_latency", {}), "p99"),
        )
    parts: list[Any] = [Text.from_markup(header), table]
    warmers = document.get("warmers", [])
    if warmers:
        lines = []
        for warmer in warmers:
            last = warmer.get("last")
            ran = "never ran" if last is None else f"last run {last['outcome']}, {last['items']} items"
            lines.append(f"  {warmer['name']}{' (running)' if warmer.get('running') else ''}: {ran}")
        parts.append(Text("warmers:\n" + "\n".join(lines)))
    recommendations = document.get("recommendations", [])
    if recommendations:
        lines = [f"  - {r['namespace'] or 'backend'}: {r['message']}" for r in recommendations]
        parts.append(Text("recommendations:\n" + "\n".join(lines), style="yellow"))
    else:
        parts.append(Text("no recommendations"))
    return Group(*parts)
