"""``python -m examples.summarizer``: ``run`` (``--dry-run`` estimates and sends nothing), ``list``, ``demo``.

Progress goes to stderr as a rich bar, so ``--json`` output on stdout stays clean for machines.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from buttress.db import Database
from buttress.errors import BackendUnavailable, ButtressError, ValidationError
from examples.summarizer.config import SummarizerConfig
from examples.summarizer.demo import demo_world
from examples.summarizer.run import Item, Report, Summarizer
from examples.summarizer.sources import read_sources
from examples.summarizer.store import SummaryStore

__all__ = ["app"]

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Summarise web pages with an LLM, on buttress."
)
out = Console(emoji=False)  # a URL's ":x:" stays text; its "[bold]" is escaped wherever it is printed
err = Console(stderr=True, emoji=False)

DryRun = Annotated[bool, typer.Option("--dry-run", help="Fetch and estimate only: nothing goes to the LLM.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
DatabaseUrl = Annotated[
    str | None, typer.Option(help="Where summaries go; default BUTTRESS_DATABASE_URL or SQLite.")
]
TableName = Annotated[str, typer.Option(help="The summaries table.")]


@app.command()
def run(
    sources: Annotated[list[str], typer.Argument(help="URLs, or files with one URL per line.")],
    *,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    llm_url: Annotated[
        str | None, typer.Option(envvar="SUMMARIZER_LLM_URL", help="The LLM's endpoint.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="SUMMARIZER_API_KEY", help="Bearer token.")] = None,
    tokens_per_minute: Annotated[int, typer.Option(help="The LLM's token limit.")] = 10_000,
    batch_size: Annotated[int, typer.Option(help="Summaries per database transaction.")] = 50,
    redis_url: Annotated[str | None, typer.Option(help="Share the token limit between processes.")] = None,
    database_url: DatabaseUrl = None,
    table: TableName = "summaries",
) -> None:
    """Summarise the pages at SOURCES, or with --dry-run say what that would fetch and cost.

    Exits 1 when a real run summarised no page at all, 2 on a mistake (an option, a source, the database).
    """
    with _refusals(database_url):
        config = _options(
            llm_url=llm_url,
            api_key=api_key,
            tokens_per_minute=tokens_per_minute,
            batch_size=batch_size,
            redis_url=redis_url,
            database_url=database_url,
            table=table,
        )
        urls = read_sources(sources)
        if not dry_run and config.llm_url is None:
            raise ValidationError(
                "--llm-url: a real run needs the LLM's endpoint; pass it or set SUMMARIZER_LLM_URL, "
                "or use --dry-run",
                field="llm_url",
            )
        report = _execute(config, urls, dry_run=dry_run, as_json=as_json)
    if not dry_run and urls and report.count("summarised") == 0:
        raise typer.Exit(1)


@app.command("list")
def list_summaries(
    limit: Annotated[int, typer.Option(min=1, max=500, help="Rows per page.")] = 20,
    after: Annotated[str | None, typer.Option(help="The cursor printed after the previous page.")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    table: TableName = "summaries",
) -> None:
    """Show stored summaries, newest first, one keyset page at a time."""
    with _refusals(database_url):
        config = _options(database_url=database_url, table=table)
        db = Database(config.database_url)
        try:
            store = SummaryStore(db, config.table)
            store.create()
            page = store.page(after=after, limit=limit)
        finally:
            db.close()
        if as_json:
            out.print_json(json.dumps({"items": page.items, "next": page.next}))
            return
        view = Table("url", "tokens", "cost", "summary")
        for row in page.items:
            tokens = row["prompt_tokens"] + row["completion_tokens"]
            view.add_row(escape(row["url"]), str(tokens), f"${row['cost']:.5f}", escape(row["summary"][:60]))
        out.print(view)
        if page.next:
            out.print(f"next page: --after {page.next}", soft_wrap=True)


@app.command()
def demo(dry_run: DryRun = False, as_json: AsJson = False, pages: int = 8) -> None:
    """Run against fake upstreams on loopback (two healthy domains, a failing and a dead one, a fake LLM)."""
    with demo_world(pages) as world, tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'summaries.db'}"
        config = SummarizerConfig.build(llm_url=world.llm_url, tokens_per_minute=20_000, database_url=url)
        _execute(config, world.urls, dry_run=dry_run, as_json=as_json, label=world.label)
        if not as_json:
            out.print(f"requests the fake LLM received: {world.upstream.calls('llm')}")


def _execute(
    config: SummarizerConfig,
    urls: list[str],
    *,
    dry_run: bool,
    as_json: bool,
    label: Callable[[str], str] = lambda url: url.split("://", 1)[-1],
) -> Report:
    """Run or plan with a progress bar, then print the report; ``label`` shortens URLs for people."""
    with Summarizer(config) as summarizer:
        if not dry_run:
            _ = summarizer.store  # open the database before the bar, so an error prints as one clean line
        with _progress(len(urls), label, quiet=as_json) as advance:
            report = summarizer.plan(urls, advance) if dry_run else summarizer.run(urls, advance)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        _show(report, label)
    return report


@contextmanager
def _progress(total: int, label: Callable[[str], str], *, quiet: bool) -> Iterator[Any]:
    """A callback that moves a rich bar one URL on (to stderr); a no-op when ``quiet``."""
    if quiet:
        yield lambda item: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("summarising", total=total)

        def advance(item: Item) -> None:
            bar.update(task, advance=1, description=escape(f"{label(item.url)} {item.outcome}"))

        yield advance


def _show(report: Report, label: Callable[[str], str]) -> None:
    view = Table("url", "outcome", "tokens", "cost", "note")
    for item in report.items:
        tokens = item.prompt_tokens + item.completion_tokens
        view.add_row(
            escape(label(item.url)),
            item.outcome,
            str(tokens or ""),
            f"${item.cost:.5f}" if tokens else "",
            escape(item.reason),
        )
    out.print(view)
    if report.dry_run:
        out.print(
            f"dry run: {report.count('estimated')} of {len(report.items)} pages would be summarised, "
            f"about {report.tokens} tokens, ${report.cost:.4f}; nothing was sent to the LLM or written",
            soft_wrap=True,
        )
    else:
        out.print(
            f"{report.count('summarised')} of {len(report.items)} pages summarised, {report.tokens} tokens, "
            f"${report.cost:.4f}; {report.written} summaries written",
            soft_wrap=True,
        )


def _options(**values: Any) -> SummarizerConfig:
    """The config from the command's options; a bad one is named as its option (``--tokens-per-minute``)."""
    try:
        return SummarizerConfig.build(**values)
    except ValidationError as exc:
        message = exc.message
        for name in values:
            message = re.sub(rf"\b{name}\b", "--" + name.replace("_", "-"), message)
        raise ValidationError(message, field=exc.field) from None


@contextmanager
def _refusals(database_url: str | None = None) -> Iterator[None]:
    """A caller's mistake exits 2 with its one-line message, not a traceback; so does a database that
    cannot be opened (named as the option or variable that chose it, its password hidden)."""
    try:
        yield
    except ValidationError as exc:
        err.print(f"error: {exc.message}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except ButtressError as exc:
        message = str(exc)
        where = "--redis-url" if isinstance(exc, BackendUnavailable) and exc.backend == "redis" else ""
        where = where or ("--database-url" if database_url else "BUTTRESS_DATABASE_URL")
        url = database_url or os.environ.get("BUTTRESS_DATABASE_URL", "")
        if password := (urlsplit(url).password if "://" in url else None):
            message = message.replace(password, "***")
        fix = f"check {where} (a reachable database, a writable sqlite:/// path)"
        if where == "--redis-url":
            fix = "check --redis-url (a reachable Redis), or leave it out to limit this process alone"
        err.print(f"error: {message}; {fix}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
