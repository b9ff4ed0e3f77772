"""The ``buttress`` command: config, health, serve, demo, breakers, cache, db, jobs, files and more.

Adding a command is a function under ``@app.command()``, or ``app.add_typer(group, name="...")`` for a group
of them. Expected failures (an invalid configuration, a file that cannot be written) exit 1 with the problem
on stderr and no traceback; usage mistakes exit 2, as click does; a command whose extra is not installed
exits 1 naming it.

``buttress --help`` is answered by :mod:`buttress.__main__` from a stored copy of this app's help
(``_cli_help.py``) without importing typer; after changing a command or a docstring, regenerate it with
``.venv/bin/python -m tests.test_cli_help`` (tests/test_cli_help.py fails until you do).
"""

from __future__ import annotations

import json
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, NoReturn

from buttress._extras import MissingExtra, require

# First, so a core install says "pip install 'buttress[cli]'" instead of "No module named 'typer'".
for _package in ("typer", "rich"):
    require(_package, "cli", "the buttress command")

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from buttress._console import cli_console
from buttress.config import (
    check_settings,
    describe_settings,
    load_settings,
    render_check,
    render_config_table,
    render_env_example,
    setting_fields,
)
from buttress.errors import ConfigError

__all__ = ["app", "main"]

app = typer.Typer(
    name="buttress",
    help="buttress: the production layer of a Python service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _stdout() -> Console:
    # Made per call, not at import, so redirected streams (tests, pipes) are honoured: a terminal's width
    # on a terminal, every value whole in a pipe.
    return cli_console()


def _stderr() -> Console:
    return cli_console(stderr=True)


def _exit_with_problems(error: ConfigError) -> NoReturn:
    _stderr().print(Text(render_check(error)))
    raise typer.Exit(1)


def _exit_with_error(message: str) -> NoReturn:
    _stderr().print(Text(message))
    raise typer.Exit(1)


@app.command("version")
def version_command() -> None:
    """Print the installed buttress version."""
    typer.echo(f"buttress {package_version('buttress')}")


@app.command("health")
def health(
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Print the health+json document.")] = False,
    group: Annotated[
        str | None, typer.Option("--group", help="Run one group (liveness, readiness, startup, ...).")
    ] = None,
) -> None:
    """Run the health checks: a table of ✓/⚠/✗, exit 1 when a critical check fails."""
    from buttress.composition import health_registry  # noqa: PLC0415 - keeps `buttress config` fast
    from buttress.observe.health_cli import health_command  # noqa: PLC0415 - as above

    code = health_command(json=as_json, group=group, build=health_registry)
    if code:
        raise typer.Exit(code)


@app.command("serve")
def serve(
    *,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on.", show_default="BUTTRESS_SERVER__HOST")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="Port to listen on (0: any free one).",
            show_default="BUTTRESS_SERVER__PORT",
        ),
    ] = None,
    env_file: Annotated[Path, typer.Option("--env-file", help="The .env file to read.")] = Path(".env"),
) -> None:
    """Run the ops server: health probes, Prometheus metrics, stats, errors and admin endpoints."""
    # Imported here so `buttress config` and `buttress health` do not pay for FastAPI and uvicorn.
    require("uvicorn", "server", "buttress serve")
    import uvicorn  # noqa: PLC0415 - the server extra, checked just above

    from buttress.observe.logging import configure_logging_from_settings  # noqa: PLC0415 - structlog, serve only
    from buttress.server import create_app  # noqa: PLC0415 - FastAPI, serve only

    try:
        settings = load_settings(env_file=env_file)
    except ConfigError as error:
        _exit_with_problems(error)
    configure_logging_from_settings(settings)
    uvicorn.run(
        create_app(settings),
        host=host if host is not None else settings.server.host,
        port=port if port is not None else settings.server.port,
        log_config=None,  # keep the handler configure_logging installed: one format for every line
        ws="websockets-sansio",  # the realtime endpoints; uvicorn's "auto" picks its deprecated legacy one
        timeout_graceful_shutdown=5,  # an open SSE stream would otherwise hold the shutdown until it ends
    )


demo_app = typer.Typer(
    help="Demos of buttress at work. `buttress demo http`: the HTTP policies next to plain httpx. From a "
    "clone of the repository, `make demo` runs the full-layer demo (examples/podpromo: uploads, jobs on two "
    "worker processes, one of them killed, the database, the cache and the ops server).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(demo_app, name="demo")


@demo_app.command("http")
def demo_http(
    *,
    requests: Annotated[
        int, typer.Option("--requests", min=5, help="GETs in the batch, spread over five upstreams.")
    ] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the upstreams' faults and the order.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """An HTTP batch through per-host policies against misbehaving upstreams, next to httpx, then cached."""
    from buttress.demo import render_report, run_demo  # noqa: PLC0415 - keeps `buttress config` fast

    # With --json, stdout carries the JSON only: the ops server's address goes to stderr.
    console = _stderr() if as_json else None
    try:
        report = run_demo(requests=requests, seed=seed, progress=not as_json, console=console)
    except ConfigError as error:
        _exit_with_problems(error)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    _stdout().print(render_report(report))


OpsUrl = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The ops server: the address of `buttress serve`, or of an app with the routes under /ops "
        "(either is found from the app's root).",
        show_default="http://<server.host>:<server.port>",
    ),
]
"""``--url`` of the commands that ask a running service's ops server (the root or the mount: the
client tries ``<url>`` and ``<url>/ops``, see :mod:`buttress._ops_client`)."""


@app.command("breakers")
def breakers(
    url: OpsUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    reset: Annotated[
        str | None, typer.Option("--reset", help="Close this breaker first (needs the admin token).")
    ] = None,
    isolate: Annotated[
        str | None, typer.Option("--isolate", help="Force this breaker open first (needs the admin token).")
    ] = None,
) -> None:
    """Show the circuit breakers of a running service (from its ops server)."""
    from buttress.resilience.cli import breakers_command, default_ops_url  # noqa: PLC0415 - httpx, this command only

    code = breakers_command(
        url=url or default_ops_url(), as_json=as_json, reset=reset, isolate=isolate, console=_stdout()
    )
    raise typer.Exit(code)


cache_app = typer.Typer(
    help="The cache: run its warmers, read its stats.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(cache_app, name="cache")


@cache_app.command("warm")
def cache_warm(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="NAME", help="Warmers to run (default: all of them).", show_default=False),
    ] = None,
    module: Annotated[
        list[str] | None,
        typer.Option(
            "--module",
            "-m",
            metavar="MODULE",
            help="Import this module first: it registers the warmers (repeatable).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Run the cache warmers in this process, with a progress bar; exit 1 if one fails."""
    from buttress.cache.cli import warm_command  # noqa: PLC0415 - keeps `buttress config` fast

    code = warm_command(
        names=names, modules=module or (), as_json=as_json, console=_stdout(), err_console=_stderr()
    )
    raise typer.Exit(code)


@cache_app.command("stats")
def cache_stats(
    url: OpsUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show the cache stats of a running service (from its ops server): hit rates, sizes, advice."""
    from buttress._ops_client import default_ops_url  # noqa: PLC0415 - httpx, this command only
    from buttress.cache.cli import stats_command  # noqa: PLC0415 - loads the cache, this command only

    raise typer.Exit(stats_command(url=url or default_ops_url(), as_json=as_json, console=_stdout()))


db_app = typer.Typer(
    help="The database: buttress's own tables; a running service's statements and index advice.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[
        str, typer.Argument(metavar="REVISION", help="Revision to reach (default: the newest).")
    ] = "head",
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL for review; run nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Create or update buttress's own tables on BUTTRESS_DATABASE_URL (or the embedded buttress.db)."""
    from buttress.db.cli import upgrade_command  # noqa: PLC0415 - SQLAlchemy and alembic, this command only

    raise typer.Exit(upgrade_command(revision=revision, sql=sql, as_json=as_json, console=_stdout()))


@db_app.command("status")
def db_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Say which of buttress's revisions the database is at; exit 2 when an upgrade is pending."""
    from buttress.db.cli import status_command  # noqa: PLC0415 - SQLAlchemy and alembic, this command only

    raise typer.Exit(status_command(as_json=as_json, console=_stdout()))


@db_app.command("stats")
def db_stats(
    url: OpsUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show a running service's database (from its ops server): pools, statements, slow log, N+1, replicas."""
    from buttress._ops_client import default_ops_url  # noqa: PLC0415 - httpx, this command only
    from buttress.db.cli import stats_command  # noqa: PLC0415 - SQLAlchemy, this command only

    raise typer.Exit(stats_command(url=url or default_ops_url(), as_json=as_json, console=_stdout()))


@db_app.command("advise")
def db_advise(
    url: OpsUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show index advice for a running service's tracked statements (verified with hypopg when installed)."""
    from buttress._ops_client import default_ops_url  # noqa: PLC0415 - httpx, this command only
    from buttress.db.cli import advise_command  # noqa: PLC0415 - SQLAlchemy, this command only

    raise typer.Exit(advise_command(url=url or default_ops_url(), as_json=as_json, console=_stdout()))


@app.command("worker")
def worker(
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues",
            "-q",
            metavar="QUEUES",
            help="Run only these queues (comma-separated, repeatable).",
            show_default="every queue of the imported jobs",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-c", min=1, help="Jobs run at once.", show_default="BUTTRESS_JOBS__CONCURRENCY"
        ),
    ] = None,
    modules: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            "-i",
            metavar="MODULE",
            help="Import this module first: it defines the jobs (repeatable).",
        ),
    ] = None,
    burst: Annotated[
        bool, typer.Option("--burst", help="Stop once nothing is due and nothing runs.")
    ] = False,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Also fire the imported @schedule definitions (exactly once however many workers do).",
        ),
    ] = True,
) -> None:
    """Run a job worker until SIGTERM: exit 1 when the database cannot be reached or no jobs are defined."""
    import logging  # noqa: PLC0415 - this command only

    from buttress.config import get_settings  # noqa: PLC0415 - as above
    from buttress.jobs.cli import worker_command  # noqa: PLC0415 - SQLAlchemy, this command only

    if not logging.getLogger().handlers:  # a worker's warnings (lost leases, a database outage) are logged
        from buttress.observe.logging import configure_logging_from_settings  # noqa: PLC0415 - structlog

        configure_logging_from_settings(get_settings())
    code = worker_command(
        queues=queues,
        concurrency=concurrency,
        modules=modules or (),
        burst=burst,
        scheduler=scheduler,
        console=_stderr(),
    )
    raise typer.Exit(code)


@app.command("schedules")
def schedules(
    count: Annotated[int, typer.Option("--next", min=1, max=50, help="Next fire times per schedule.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="JSON (epoch seconds) instead of a table.")] = False,
) -> None:
    """List the stored schedules: expression, job, policies, active, last fire and next fire times."""
    from buttress.jobs import get_jobs  # noqa: PLC0415 - SQLAlchemy, this command only
    from buttress.jobs.schedules_cli import schedules_command  # noqa: PLC0415 - as above

    raise typer.Exit(schedules_command(jobs=get_jobs(), count=count, as_json=as_json, console=_stdout()))


jobs_app = typer.Typer(
    help="Jobs in the database: list, show, cancel, retry and purge them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(jobs_app, name="jobs")

JobId = Annotated[int, typer.Argument(metavar="ID", min=1, help="The job's id.")]
JobsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Statuses = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        "-s",
        metavar="STATUS",
        help="Only jobs in this state (repeatable): queued, scheduled, running, succeeded, failed, retrying, "
        "cancelled, dead.",
    ),
]


@jobs_app.command("ls")
def jobs_ls(
    *,
    status: Statuses = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Only this queue's jobs.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Only jobs of this type.")] = None,
    before_id: Annotated[
        int | None, typer.Option("--before-id", min=1, help="Only jobs older than this id (paging).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many jobs.")] = 50,
    as_json: JobsJson = False,
) -> None:
    """List jobs, newest first."""
    from buttress.jobs.cli import ls_command  # noqa: PLC0415 - SQLAlchemy, this command only

    code = ls_command(
        status=status or (),
        queue=queue,
        task=task,
        before_id=before_id,
        limit=limit,
        as_json=as_json,
        console=_stdout(),
        err_console=_stderr(),
    )
    raise typer.Exit(code)


@jobs_app.command("show")
def jobs_show(job_id: JobId, as_json: JobsJson = False) -> None:
    """Show one job: status, attempts, progress, arguments, result or error; exit 1 when there is none."""
    from buttress.jobs.cli import show_command  # noqa: PLC0415 - SQLAlchemy, this command only

    raise typer.Exit(show_command(job_id=job_id, as_json=as_json, console=_stdout(), err_console=_stderr()))


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobId, as_json: JobsJson = False) -> None:
    """Cancel a job (a running one: its worker stops it); exit 3 when it had already ended."""
    from buttress.jobs.cli import cancel_command  # noqa: PLC0415 - SQLAlchemy, this command only

    raise typer.Exit(cancel_command(job_id=job_id, as_json=as_json, console=_stdout(), err_console=_stderr()))


@jobs_app.command("retry")
def jobs_retry(job_id: JobId, as_json: JobsJson = False) -> None:
    """Queue a failed, cancelled or dead job again; exit 3 when it succeeded or still runs."""
    from buttress.jobs.cli import retry_command  # noqa: PLC0415 - SQLAlchemy, this command only

    raise typer.Exit(retry_command(job_id=job_id, as_json=as_json, console=_stdout(), err_console=_stderr()))


@jobs_app.command("purge")
def jobs_purge(
    older_than: Annotated[
        float, typer.Option("--older-than", min=0, help="Only jobs that finished over this many seconds ago.")
    ] = 0.0,
    status: Statuses = None,
    as_json: JobsJson = False,
) -> None:
    """Delete finished jobs (succeeded, failed, cancelled, dead; or --status) now, not at their TTL."""
    from buttress.jobs.cli import purge_command  # noqa: PLC0415 - SQLAlchemy, this command only

    code = purge_command(
        older_than=older_than, status=status or (), as_json=as_json, console=_stdout(), err_console=_stderr()
    )
    raise typer.Exit(code)


files_app = typer.Typer(
    help="Files in the store: stats, list, archive, restore and clean up.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(files_app, name="files")

FileId = Annotated[str, typer.Argument(metavar="ID", help="The file's 32-hex id.")]
FilesJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@files_app.command("stats")
def files_stats(as_json: FilesJson = False) -> None:
    """Files and bytes by state, quota use per owner, saves in flight, where the bytes live."""
    from buttress.files.cli import stats_command  # noqa: PLC0415 - SQLAlchemy and libmagic, this command only

    raise typer.Exit(stats_command(as_json=as_json, console=_stdout(), err_console=_stderr()))


@files_app.command("ls")
def files_ls(
    *,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's files.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only files with this tag.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", metavar="STATE", help="Only stored or archived files.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="At most this many files.")] = 100,
    as_json: FilesJson = False,
) -> None:
    """List files, newest first."""
    from buttress.files.cli import ls_command  # noqa: PLC0415 - SQLAlchemy and libmagic, this command only

    if state not in (None, "stored", "archived"):
        raise typer.BadParameter(f"--state must be stored or archived, got {state!r}")
    code = ls_command(
        owner=owner,
        tag=tag,
        state="archived" if state == "archived" else ("stored" if state else None),
        limit=limit,
        as_json=as_json,
        console=_stdout(),
        err_console=_stderr(),
    )
    raise typer.Exit(code)


@files_app.command("archive")
def files_archive(file_id: FileId, as_json: FilesJson = False) -> None:
    """Move a stored file's bytes to the archive (gzipped); exit 1 when there is no such file."""
    from buttress.files.cli import archive_command  # noqa: PLC0415 - SQLAlchemy and libmagic, this command only

    raise typer.Exit(
        archive_command(file_id=file_id, as_json=as_json, console=_stdout(), err_console=_stderr())
    )


@files_app.command("restore")
def files_restore(file_id: FileId, as_json: FilesJson = False) -> None:
    """Bring an archived file back (its sha256 checked); exit 1 when there is no such file."""
    from buttress.files.cli import restore_command  # noqa: PLC0415 - SQLAlchemy and libmagic, this command only

    raise typer.Exit(
        restore_command(file_id=file_id, as_json=as_json, console=_stdout(), err_console=_stderr())
    )


@files_app.command("cleanup")
def files_cleanup(
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be done; change nothing.")
    ] = False,
    max_age: Annotated[
        str | None, typer.Option("--max-age", metavar="AGE", help="Files created longer ago (30d, 12h, 90m).")
    ] = None,
    idle: Annotated[
        str | None, typer.Option("--idle", metavar="AGE", help="Files unread for this long.")
    ] = None,
    high_water: Annotated[
        str | None,
        typer.Option("--high-water", metavar="MARK", help="Only over this use: 0.9 of the quota, or 50GB."),
    ] = None,
    low_water: Annotated[
        str | None, typer.Option("--low-water", metavar="MARK", help="Down to this use (default 0.9 x high).")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only files with this tag.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's files.")] = None,
    action: Annotated[str, typer.Option("--action", metavar="ACTION", help="archive or delete.")] = "archive",
    state: Annotated[
        str,
        typer.Option("--state", metavar="STATE", help="stored, or archived (with --action delete: purge)."),
    ] = "stored",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many files.")] = None,
    modules: Annotated[
        list[str] | None,
        typer.Option("--import", metavar="MODULE", help="Import this module first: it defines the rules."),
    ] = None,
    as_json: FilesJson = False,
) -> None:
    """Sweep abandoned saves, then apply retention: the rule of these options, else the imported app's."""
    from buttress.errors import ValidationError  # noqa: PLC0415 - with the command's other imports
    from buttress.files.cli import cleanup_command, rule_from_options  # noqa: PLC0415 - SQLAlchemy, libmagic
    from buttress.jobs.cli import import_modules  # noqa: PLC0415 - as above

    try:
        rule = rule_from_options(
            action=action,
            state=state,
            max_age=max_age,
            idle=idle,
            high_water=high_water,
            low_water=low_water,
            tag=tag,
            owner=owner,
        )
    except ValidationError as exc:
        field = str(exc.context.get("field", "max_age"))
        raise typer.BadParameter(str(exc), param_hint=f"'--{field.replace('_', '-')}'") from None
    if modules and not import_modules(modules, _stderr()):
        raise typer.Exit(1)
    code = cleanup_command(
        rule=rule, dry_run=dry_run, limit=limit, as_json=as_json, console=_stdout(), err_console=_stderr()
    )
    raise typer.Exit(code)


@app.command("config")
def config_command(
    *,
    check: Annotated[
        bool, typer.Option("--check", help="Validate only: exit 1 listing every problem.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    example: Annotated[bool, typer.Option("--example", help="Write .env.example (or PATH).")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the settings table of docs/reference/settings.md.")
    ] = False,
    path: Annotated[
        Path | None, typer.Argument(help="Where --example writes.", show_default=".env.example")
    ] = None,
    env_file: Annotated[Path, typer.Option("--env-file", help="The .env file to read.")] = Path(".env"),
) -> None:
    """Show the effective configuration: every variable, its value (secrets masked) and its source."""
    if check + example + markdown > 1:
        raise typer.BadParameter("use one of --check, --example and --markdown at a time")
    if as_json and (example or markdown):
        raise typer.BadParameter("--json goes with the table or --check")
    if path is not None and not example:
        raise typer.BadParameter(f"a PATH ({path}) is only taken by --example")
    if example:
        _write_env_example(path or Path(".env.example"))
    elif markdown:
        typer.echo(render_config_table(), nl=False)
    elif check:
        _check(env_file, as_json=as_json)
    else:
        _show(env_file, as_json=as_json)


def _write_env_example(path: Path) -> None:
    text = render_env_example()
    partial = path.with_name(f".{path.name}.partial")
    try:
        # Write beside the target, then rename: a failure never leaves half a file behind.
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        _exit_with_error(f"cannot write {path}: {exc.strerror or exc}")
    _stdout().print(Text(f"Wrote {path} ({len(setting_fields())} variables, commented out)."))


def _check(env_file: Path, *, as_json: bool) -> None:
    try:
        settings = check_settings(env_file=env_file)  # load_settings plus the checks that import code
    except ConfigError as error:
        if as_json:
            typer.echo(render_check(error, as_json=True))
            raise typer.Exit(1) from None
        _exit_with_problems(error)
    if as_json:
        typer.echo(render_check(settings, as_json=True))
    else:
        _stdout().print(Text(render_check(settings, env_file=env_file)))


def _show(env_file: Path, *, as_json: bool) -> None:
    try:
        settings = load_settings(env_file=env_file)
    except ConfigError as error:
        _exit_with_problems(error)
    described = describe_settings(settings, env_file=env_file)
    if as_json:
        document = {row.variable: {"value": row.value, "source": row.source} for row in described}
        typer.echo(json.dumps(document, indent=2))
        return
    source_of_file = str(env_file) if env_file.is_file() else f"{env_file}, not found"
    table = Table(title=f"buttress configuration ({source_of_file})", title_justify="left")
    table.add_column("Variable", no_wrap=True)
    table.add_column("Value", overflow="fold")
    table.add_column("Source", no_wrap=True)
    for row in described:
        value = Text("unset", style="dim") if row.value is None else Text(str(row.value))
        table.add_row(Text(row.variable), value, Text(row.source))
    _stdout().print(table)


def main() -> None:
    """Entry point of the ``buttress`` script (through :mod:`buttress.__main__`, which answers ``--help``)."""
    try:
        app(prog_name="buttress")
    except MissingExtra as missing:  # a command whose extra is not installed: say which, no traceback
        _stderr().print(Text(str(missing)))
        raise SystemExit(1) from None
