"""What the CLI commands that read a running ops server share: its URL, one GET, and the error text."""

from __future__ import annotations

from typing import Any

import httpx
from rich.console import Console

from buttress.config import get_settings

__all__ = ["default_ops_url", "get_ops_json", "problem_text", "report_unreachable"]


def default_ops_url() -> str:
    """The ops server of this machine's settings: ``http://<server.host>:<server.port>/ops``."""
    server = get_settings().server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host  # noqa: S104 - reading, not binding
    return f"http://{host}:{server.port}/ops"


def problem_text(answer: httpx.Response) -> str:
    """``HTTP <status>: <detail>`` of an error answer (the problem+json detail when there is one)."""
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"HTTP {answer.status_code}: {detail or body}"


def report_unreachable(console: Console, base: str, exc: Exception) -> int:
    """Say the ops server at ``base`` did not answer and how to fix it; the exit code (1)."""
    console.print(
        f"[red]cannot reach the ops server at {base} ({exc}); start it with `buttress serve` "
        "or pass --url[/red]"
    )
    return 1


def get_ops_json(client: httpx.Client, base: str, path: str, console: Console) -> Any:
    """The JSON of ``GET <base><path>``, or None after printing why it failed (unreachable, error status)."""
    try:
        answer = client.get(f"{base}{path}")
    except httpx.TransportError as exc:
        report_unreachable(console, base, exc)
        return None
    if answer.status_code != httpx.codes.OK:
        console.print(f"[red]GET {base}{path}: {problem_text(answer)}[/red]")
        return None
    return answer.json()
