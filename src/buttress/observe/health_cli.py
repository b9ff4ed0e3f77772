"""``buttress health``: run the checks once and show a table (people) or the health+json document (tools).

The exit code is what scripts and container probes read: 1 when a critical check fails, 2 when the
command cannot run (bad group, invalid configuration), else 0 (``warn`` is still healthy).
"""

from __future__ import annotations

import json as _json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from rich.table import Table
from rich.text import Text

from buttress._console import FOLD, cli_console
from buttress.errors import ButtressError
from buttress.observe._health_checks import human_bytes

if TYPE_CHECKING:
    from buttress.observe._health_core import CheckOutcome, HealthRegistry, HealthReport
    from buttress.observe.health import ServiceUrls

__all__ = ["format_duration", "format_health_table", "health_command"]

_SYMBOLS = {"pass": ("✓", "green"), "warn": ("⚠", "yellow"), "fail": ("✗", "red")}


def format_duration(seconds: float) -> str:
    """Milliseconds below a second (``"12.3 ms"``), seconds above (``"2.00 s"``)."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _message(outcome: CheckOutcome) -> str:
    if outcome.output:
        return outcome.output
    value, unit = outcome.observed_value, outcome.observed_unit
    if value is None:
        return ""
    if unit == "bytes" and isinstance(value, int | float):
        return human_bytes(value)
    if isinstance(value, float):
        return f"{value:.1f} {unit}" if unit else f"{value:.1f}"
    return f"{value} {unit}" if unit else str(value)


def format_health_table(report: HealthReport) -> Table:
    """A rich table: status symbol, check name (optional ones marked), message, duration."""
    symbol, colour = _SYMBOLS[report.status]
    title = Text.assemble("health: ", (f"{symbol} {report.status}", f"bold {colour}"))
    if report.group:
        title.append(f" ({report.group})")
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("", no_wrap=True, width=1)
    table.add_column("check", overflow=FOLD)
    table.add_column("message", overflow=FOLD)
    table.add_column("duration", justify="right", no_wrap=True)
    for outcome in report.checks:
        mark, style = _SYMBOLS[outcome.status]
        name = Text(outcome.name)
        if not outcome.critical:
            name.append(" (optional)", style="dim")
        table.add_row(
            Text(mark, style=style), name, Text(_message(outcome)), format_duration(outcome.duration)
        )
    return table


def health_command(
    json: bool = False,
    group: str | None = None,
    *,
    settings: ServiceUrls | None = None,
    registry: HealthRegistry | None = None,
    build: Callable[..., HealthRegistry] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the checks of ``group`` (all when ``None``), print them and return the process exit code.

    Without ``registry`` the checks come from ``build(settings)`` (``buttress health`` passes the
    composition root's, which adds every capability's checks; default: :func:`default_health_registry`)
    on ``settings`` (by default the process settings), and are closed afterwards.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    owned = registry is None
    try:
        if registry is None:
            if build is None:
                from buttress.observe.health import default_health_registry  # noqa: PLC0415 - keeps CLI start fast

                build = default_health_registry
            registry = build(settings)
        try:
            report = registry.run_sync(group)
        finally:
            if owned:
                registry.close()
    except ButtressError as exc:  # an unknown group or invalid settings: the command itself cannot run
        err.write(f"buttress health: {exc}\n")
        return 2
    if json:
        out.write(_json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        cli_console(file=out).print(format_health_table(report))
    return 1 if report.status == "fail" else 0
