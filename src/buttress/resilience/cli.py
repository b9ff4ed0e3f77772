"""``buttress breakers``: the breakers of a running service, from its ops server, as a terminal table.

Breakers live inside the service's processes (or in Redis, in a format that is ours to change), so the
command asks the ops server (``GET /breakers``, at the root of ``buttress serve`` or under ``/ops`` of an
app that installed the routes: :class:`~buttress._ops_client.OpsClient` finds them) rather than reading
state behind its back. ``--reset`` and ``--isolate`` call the admin endpoints with
``BUTTRESS_SECURITY__ADMIN_TOKEN``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from buttress._console import FOLD, cli_console
from buttress._ops_client import OpsClient, default_ops_url, problem_text
from buttress.config import get_settings

__all__ = ["breakers_command", "default_ops_url"]

_STATE_STYLES = {
    "closed": "green",
    "half_open": "yellow",
    "open": "red",
    "forced_open": "bold red",
    "disabled": "dim",
}


def _admin_headers() -> dict[str, str]:
    token = get_settings().security.admin_token
    return {} if token is None else {"Authorization": f"Bearer {token.get_secret_value()}"}


def breakers_command(
    *,
    url: str,
    as_json: bool = False,
    reset: str | None = None,
    isolate: str | None = None,
    console: Console | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Print the breakers (after resetting or isolating one, if asked); the exit code."""
    console = console or cli_console()
    with OpsClient(url, console, transport=transport) as ops:
        if (reset is not None or isolate is not None) and ops.get_json("/breakers") is None:
            return 1  # the routes were not found: nothing to reset
        for action, key in (("reset", reset), ("isolate", isolate)):
            if key is not None:
                answer = ops.post(f"/breakers/{key}/{action}", _admin_headers())
                if answer is None:
                    return 1
                if answer.status_code != httpx.codes.OK:
                    console.print(Text(f"{action} {key}: {problem_text(answer)}", style="red"))
                    return 1
                console.print(Text(f"breaker {key}: {action} done"))
        rows: list[dict[str, Any]] | None = ops.get_json("/breakers")
    if rows is None:
        return 1
    if as_json:
        console.print_json(json.dumps(rows))
        return 0
    console.print(_table(rows))
    return 0


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} circuit breaker{'s' if len(rows) != 1 else ''}")
    # The key takes what the short columns leave, and folds over more lines on a narrow terminal.
    table.add_column("key", overflow=FOLD)
    for column in ("state", "failure rate", "calls", "failures", "retry after", "store"):
        justify: JustifyMethod = "right" if column in ("calls", "failures") else "left"
        table.add_column(column, justify=justify, no_wrap=True, overflow=FOLD)
    for row in rows:
        state = str(row.get("state"))
        rate = row.get("failure_rate")
        retry_after = row.get("retry_after")
        table.add_row(
            Text(str(row.get("name"))),
            f"[{_STATE_STYLES.get(state, 'white')}]{state}[/]",
            "-" if rate is None else f"{rate:.0%}",
            str(row.get("calls", 0)),
            str(row.get("failures", 0)),
            "-" if retry_after is None else f"{retry_after:.1f} s",
            str(row.get("store", "")),
        )
    return table
