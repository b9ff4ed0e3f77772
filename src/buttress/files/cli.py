"""``buttress files stats|ls|archive|restore|cleanup``: the file store of this machine's settings.

The commands use the process's :class:`~buttress.files.FileStore` (``files.url`` for the bytes,
``BUTTRESS_DATABASE_URL`` for the rows, as :func:`~buttress.files.get_files` builds it), directly, as
``buttress jobs`` reads the job tables: no ops server is involved.

``cleanup`` runs the sweep, then retention rules, chosen in this order: the one rule the options
describe (``--max-age 30d``, ``--idle 7d`` or ``--high-water 0.9``, narrowed by ``--tag``/``--owner``,
``--action archive|delete``, ``--state archived`` for the purge); else the rules of the ``files.cleanup``
job the ``--import`` modules define (``schedule_cleanup([...])``: what the app's workers run); else the
store's own ``retention``. With none, it sweeps only. ``--dry-run`` lists what it would do and changes
nothing.

Exit codes: 0 done; 1 failed (the database or the store cannot be reached, no such file, a module that
does not import, a cleanup with errors); 2 a usage mistake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

from pydantic import ByteSize, TypeAdapter
from pydantic import ValidationError as PydanticError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from buttress._console import FOLD
from buttress.errors import ButtressError, ValidationError
from buttress.files._cleanup import CleanupReport
from buttress.files._cleanup_job import scheduled_rules
from buttress.files._info import FileState, StoredFile
from buttress.files._provide import get_files
from buttress.files._retention import Action, Retention

__all__ = [
    "EXIT_FAILED",
    "archive_command",
    "cleanup_command",
    "ls_command",
    "parse_duration",
    "parse_mark",
    "restore_command",
    "stats_command",
]

EXIT_FAILED: Final = 1
_SHOWN: Final = 50
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BYTES = TypeAdapter(ByteSize)


def parse_duration(value: str, field: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or plain seconds, as seconds."""
    found = _DURATION.match(value)
    if found is None:
        raise ValidationError(
            f"{field} must be a duration such as 30d, 12h, 90m, 45s or seconds, got {value!r}", field=field
        )
    return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def parse_mark(value: str, field: str) -> float:
    """``0.9`` (a fraction of the quota) or ``50GB`` / ``5000000000`` (bytes)."""
    try:
        number = float(value)
    except ValueError:
        try:
            return float(_BYTES.validate_python(value))
        except PydanticError:
            raise ValidationError(
                f"{field} must be a fraction of the quota (0.9) or a size (50GB), got {value!r}", field=field
            ) from None
    return number


def _say(console: Console, message: str) -> None:
    console.print(Text(message, style="red"))


def _guarded(console: Console, action: Callable[[], int]) -> int:
    """Run ``action``; a buttress error (no such file, a bad option, the database down) exits 1."""
    try:
        return action()
    except ButtressError as exc:
        _say(console, str(exc))
        return EXIT_FAILED


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _dump(console: Console, document: object) -> None:
    console.out(json.dumps(document), highlight=False)


def stats_command(*, as_json: bool, console: Console, err_console: Console) -> int:
    """Print the store's totals, quota use per scope and where the bytes live; the exit code."""

    def run() -> int:
        stats = get_files().stats()
        if as_json:
            _dump(console, stats.to_dict())
            return 0
        table = Table(title="files", title_justify="left")
        for column in ("scope", "files", "bytes", "reserved", "quota", "free"):
            table.add_column(column, overflow=FOLD)
        for scope in stats.usage:
            shown = scope.to_dict()
            table.add_row(
                *(str("-" if shown[key] is None else shown[key]) for key in ("scope", "files", "used")),
                str(shown["reserved"]),
                "-" if shown["quota"] is None else str(shown["quota"]),
                "-" if shown["free"] is None else str(shown["free"]),
            )
        console.print(table)
        console.print(
            Text(
                f"stored: {stats.stored_files} files, {stats.stored_bytes} bytes; archived: "
                f"{stats.archived_files} files, {stats.archived_bytes} bytes; "
                f"saves in flight: {stats.in_flight}; "
                + ", ".join(f"{key} {value}" for key, value in stats.location.items())
            )
        )
        return 0

    return _guarded(err_console, run)


def _files_table(found: Sequence[StoredFile]) -> Table:
    table = Table(title_justify="left")
    for column in ("id", "name", "owner", "type", "size", "state", "tags", "created", "read"):
        table.add_column(column, overflow=FOLD)
    for item in found:
        table.add_row(
            item.id,
            Text(item.name),
            Text(item.owner or "-"),
            item.content_type,
            str(item.size),
            item.state,
            Text(",".join(item.tags)),
            _when(item.created_at),
            _when(item.accessed_at),
        )
    return table


def ls_command(
    *,
    owner: str | None,
    tag: str | None,
    state: FileState | None,
    limit: int,
    as_json: bool,
    console: Console,
    err_console: Console,
) -> int:
    """Print files newest first (filtered); the exit code."""

    def run() -> int:
        found = get_files().list(owner=owner, tag=tag, state=state, limit=limit)
        if as_json:
            _dump(console, [item.to_dict() for item in found])
        elif not found:
            console.print(Text("no files match"))
        else:
            console.print(_files_table(found))
        return 0

    return _guarded(err_console, run)


def _changed(
    change: Callable[[str], StoredFile],
    file_id: str,
    *,
    as_json: bool,
    console: Console,
    err_console: Console,
) -> int:
    def run() -> int:
        item = change(file_id)
        if as_json:
            _dump(console, item.to_dict())
        else:
            console.print(Text(f"file {item.id} ({item.name}): {item.state}"))
        return 0

    return _guarded(err_console, run)


def archive_command(*, file_id: str, as_json: bool, console: Console, err_console: Console) -> int:
    """Archive a stored file (idempotent); exit 1 when there is none."""
    return _changed(get_files().archive, file_id, as_json=as_json, console=console, err_console=err_console)


def restore_command(*, file_id: str, as_json: bool, console: Console, err_console: Console) -> int:
    """Restore an archived file (idempotent); exit 1 when there is none."""
    return _changed(get_files().restore, file_id, as_json=as_json, console=console, err_console=err_console)


def rule_from_options(
    *,
    action: str,
    state: str,
    max_age: str | None,
    idle: str | None,
    high_water: str | None,
    low_water: str | None,
    tag: str | None,
    owner: str | None,
) -> Retention | None:
    """The one rule the options describe, or None when they name no condition."""
    if max_age is None and idle is None and high_water is None:
        if low_water is not None or tag is not None or owner is not None:
            raise ValidationError(
                "--tag, --owner and --low-water narrow a rule: give --max-age, --idle or --high-water too",
                field="max_age",
            )
        return None
    chosen: Action = "delete" if action == "delete" else "archive"
    if action not in ("archive", "delete"):
        raise ValidationError(f"--action must be archive or delete, got {action!r}", field="action")
    if state not in ("stored", "archived"):
        raise ValidationError(f"--state must be stored or archived, got {state!r}", field="state")
    return Retention(
        action=chosen,
        state="archived" if state == "archived" else "stored",
        max_age=None if max_age is None else parse_duration(max_age, "max_age"),
        idle=None if idle is None else parse_duration(idle, "idle"),
        high_water=None if high_water is None else parse_mark(high_water, "high_water"),
        low_water=None if low_water is None else parse_mark(low_water, "low_water"),
        tag=tag,
        owner=owner,
    )


def _report_table(report: CleanupReport) -> Table:
    table = Table(title_justify="left")
    for column in ("file", "name", "owner", "size", "action", "rule", "outcome"):
        table.add_column(column, overflow=FOLD)
    for action in report.actions[:_SHOWN]:
        table.add_row(
            action.file_id,
            Text(action.name),
            Text(action.owner or "-"),
            str(action.size),
            action.action,
            Text(f"{action.rule}: {action.reason}"),
            Text(action.outcome + (f": {action.error}" if action.error else "")),
        )
    return table


def cleanup_command(
    *,
    rule: Retention | None,
    dry_run: bool,
    limit: int | None,
    as_json: bool,
    console: Console,
    err_console: Console,
) -> int:
    """Sweep and apply the chosen rules (see the module docstring); exit 1 when a file failed."""

    def run() -> int:
        store = get_files()
        rules = (rule,) if rule is not None else scheduled_rules()
        if not (rules if rules is not None else store.retention) and not as_json:
            err_console.print(
                "no retention rules: only abandoned saves are swept (give --max-age/--idle/--high-water, "
                "or --import the module that calls schedule_cleanup)"
            )
        report = store.cleanup(dry_run=dry_run, rules=rules, limit=limit)
        if as_json:
            _dump(console, report.to_dict())
        else:
            if report.actions:
                console.print(_report_table(report))
            summary = report.summary()
            swept = summary.pop("sweep")
            verb = "would be" if dry_run else "were"
            more = len(report.actions) - _SHOWN
            console.print(
                Text(
                    (f"({more} more not shown; --json lists them all)\n" if more > 0 else "")
                    + f"{report.archived} archived, {report.deleted} deleted, {report.purged} purged "
                    f"({summary['bytes_freed']} bytes freed), {report.raced} done by someone else first, "
                    f"{report.errors} errors; the sweep: {swept['reservations']} abandoned saves, "
                    f"{swept['leftovers']} temp files and {swept['orphans']} orphans {verb} reclaimed"
                    + (" (dry run: nothing was changed)" if dry_run else "")
                )
            )
        return EXIT_FAILED if report.errors else 0

    return _guarded(err_console, run)
