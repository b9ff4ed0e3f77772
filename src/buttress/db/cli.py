"""``buttress db upgrade|status`` (buttress's own tables) and ``buttress db stats|advise`` (a service).

``upgrade`` and ``status`` open the database of the settings (``BUTTRESS_DATABASE_URL``, else the embedded
``buttress.db`` in the working directory) in this process; ``upgrade --sql`` prints the statements for
review and connects to nothing. ``stats`` and ``advise`` ask a running service's ops server (``GET /db``,
``GET /db/advice``): the statements were tracked in its processes, not here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final

import httpx
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from buttress._console import FOLD, cli_console
from buttress._ops_client import OpsClient
from buttress.db._database import Database
from buttress.db._migration_status import MigrationStatus
from buttress.errors import ButtressError

__all__ = ["advise_command", "stats_command", "status_command", "upgrade_command"]


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


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _table(title: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow=FOLD)
    for row in rows:
        table.add_row(*row)
    return table


def _stats_tables(report: dict[str, Any]) -> Group:
    parts: list[Any] = [Text(f"{report['backend']} at {report['url']}")]
    pools = [
        (name, str(p["size"]), str(p["checked_out"]), str(p["idle"]), str(p["overflow"]), str(p["saturated"]))
        for name, p in report["pools"].items()
    ]
    parts.append(_table("pools", ("engine", "size", "in use", "idle", "overflow", "saturated"), pools))
    statements = [
        (str(r["calls"]), _ms(r["total_seconds"]), _ms(r["mean_seconds"]), _ms(r["p95_seconds"]),
         _ms(r["p99_seconds"]), str(r["errors"]), r["sql"])
        for r in report["statements"]
    ]  # fmt: skip
    columns = ("calls", "total ms", "mean ms", "p95 ms", "p99 ms", "errors", "sql")
    parts.append(_table("statements by total time", columns, statements))
    if report["slow"]:
        slow = [(_ms(r["seconds"]), r["site"], r["sql"]) for r in report["slow"]]
        parts.append(_table("slow log", ("ms", "site", "sql"), slow))
    if report["n_plus_one"]:
        incidents = [(r["scope"], str(r["count"]), r["site"], r["sql"]) for r in report["n_plus_one"]]
        parts.append(_table("N+1 incidents", ("scope", "count", "site", "sql"), incidents))
    if report["replicas"]:
        replicas = [
            (r["name"], str(r["healthy"]), "-" if r["lag_seconds"] is None else f"{r['lag_seconds']:.2f}",
             r["breaker"], r["last_error"] or "")
            for r in report["replicas"]
        ]  # fmt: skip
        parts.append(_table("replicas", ("name", "healthy", "lag s", "breaker", "error"), replicas))
    return Group(*parts)


_NOT_IN_USE: Final = "the service has not opened a database (and BUTTRESS_DATABASE_URL is unset)"


def _show(
    path: str,
    render: Callable[[dict[str, Any]], Any],
    *,
    url: str,
    as_json: bool,
    console: Console | None,
    transport: httpx.BaseTransport | None,
) -> int:
    """GET ``path`` from the ops server at ``url`` and print it (JSON, or what ``render`` makes)."""
    console = console or cli_console()
    with OpsClient(url, console, transport=transport) as client:
        report = client.get_json(path)
    if report is None:
        return 1
    if as_json:
        console.print_json(json.dumps(report))
    elif not report["in_use"]:
        console.print(_NOT_IN_USE)
    else:
        console.print(render(report))
    return 0


def stats_command(
    *,
    url: str,
    as_json: bool = False,
    console: Console | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Print the database report of the ops server at ``url``; the exit code."""
    return _show("/db", _stats_tables, url=url, as_json=as_json, console=console, transport=transport)


def advise_command(
    *,
    url: str,
    as_json: bool = False,
    console: Console | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Print the index advice of the ops server at ``url``; the exit code."""
    return _show(
        "/db/advice",
        lambda report: Text(report["text"]),
        url=url,
        as_json=as_json,
        console=console,
        transport=transport,
    )
