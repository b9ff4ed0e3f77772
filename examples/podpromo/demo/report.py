"""The final report as rich tables, worded for someone who has not read the source."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["render"]


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for n, column in enumerate(columns):
        table.add_column(column, justify="left" if n == 0 else "right", overflow="fold")
    return table


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]NO[/]"


def render(report: dict[str, Any], console: Console) -> None:
    """Print every section of ``report`` (what :func:`~examples.podpromo.demo.run.run_demo` returned)."""
    backends = report["backends"]
    console.print(
        f"\n[bold]podpromo demo report[/]  ({report['wall_seconds']} s)\n"
        f"database: {backends['database']}   redis: {backends['redis']}   files: {backends['files']}\n"
        f"dashboard was at {report['dashboard']}"
    )
    console.print(_jobs(report))
    console.print(_kill(report))
    console.print(_http(report))
    console.print(_cache(report))
    console.print(_database(report))
    console.print(_storage(report))
    if report["redis"]["in_use"]:
        console.print(_redis(report))


def _jobs(report: dict[str, Any]) -> Table:
    jobs, uploads = report["jobs"], report["uploads"]
    table = _table("Episodes and their jobs (one priority job per accepted upload)", "outcome", "count")
    table.add_row("uploads sent", str(uploads["sent"]))
    for reason, count in sorted(uploads["refused"].items()):
        table.add_row(f"  refused at upload: {reason} (nothing stored, nothing queued)", str(count))
    table.add_row("jobs succeeded", str(jobs["succeeded"]))
    table.add_row("jobs failed (attempts spent)", str(jobs["failed"]))
    for reason, count in report["failures"].items():
        table.add_row(f"  {reason}", str(count))
    table.add_row("jobs cancelled by the demo while waiting", str(jobs["cancelled"]))
    table.add_row("job attempts in all", str(report["job_attempts"]))
    table.add_row("lost (not ended, or succeeded without its result row)", str(jobs["lost"]))
    table.add_row("completed twice (a second result row for an episode)", str(jobs["completed_twice"]))
    table.add_row(
        "job bodies started more than once (after a kill or a failed attempt)",
        str(jobs["ran_more_than_once"]),
    )
    table.add_row(
        "job bodies run to their end more than once (a stalled worker's copy; its writes are upserts)",
        str(jobs["bodies_finished_more_than_once"]),
    )
    table.add_row("exactly one result row per succeeded episode", _mark(jobs["result_rows_per_episode_ok"]))
    return table


def _kill(report: dict[str, Any]) -> Table:
    kill = report["worker_kill"]
    table = _table("The worker kill (SIGKILL mid-job; its leases had to run out)", "what", "value")
    if not kill["killed"]:
        table.add_row("no worker was killed", "every job ended first")
        return table
    table.add_row("killed worker pid / replacement pid", f"{kill['worker_pid']} / {kill['replacement_pid']}")
    table.add_row("job lease", f"{kill['lease_seconds']} s")
    table.add_row("jobs it was running", str(kill["running_at_kill"]))
    table.add_row("recovered: run again by another worker and succeeded", str(kill["recovered"]))
    table.add_row("re-leased this long after the kill", f"{kill['re_leased_after_seconds']} s")
    table.add_row("lost / completed twice", f"{report['jobs']['lost']} / {report['jobs']['completed_twice']}")
    table.add_row("workers that died without being killed", str(report["workers"]["exited_by_themselves"]))
    return table


def _http(report: dict[str, Any]) -> Table:
    table = _table(
        "Calls to the outside services through buttress.http's per-host policies, all workers together",
        "host", "requests", "retries", "breaker openings", "refused by breaker", "limiter waits",
        "upstream answered",
    )  # fmt: skip
    table.caption = (
        "transcribe: flaky (25 % of answers 503)   clips: rate-limited (30/s, then 429)   thumbnails: down"
    )
    for policy, stats in report["http"].items():
        served = report["upstreams"].get(policy, {})
        table.add_row(
            policy,
            str(stats["requests"]),
            str(stats["retries"]),
            str(stats["breaker_openings"]),
            str(stats["rejected_breaker"]),
            f"{stats['limiter_waits']} ({stats['limiter_wait_seconds']} s)",
            ", ".join(f"{status}: {count}" for status, count in sorted(served.items())) or "nothing (down)",
        )
    return table


def _cache(report: dict[str, Any]) -> Table:
    cache = report["cache"]
    where = "/".join(cache["backend"]) or "none"
    table = _table(f"Cache ({where}; hit rate {cache['hit_rate']:.0%})", "namespace", "lookups", "hits")
    for name, space in cache["namespaces"].items():
        if space["lookups"]:
            table.add_row(name, str(space["lookups"]), str(space["hits"]))
    return table


def _database(report: dict[str, Any]) -> Table:
    db = report["database"]
    table = _table(
        f"Database, as the app's process tracked it (the app and the demo's reads): {db['statements']} "
        f"statements of {db['statement_shapes']} shapes; {len(db['slow'])} over {db['slow_threshold_ms']} ms;"
        f" {db['n_plus_one']} N+1",
        "statement (top by total time) / advice", "calls", "total ms",
    )  # fmt: skip
    for entry in db["top"]:
        table.add_row(entry["sql"][:240], str(entry["calls"]), str(entry["total_ms"]))
    for slow in db["slow"]:
        table.add_row(f"[yellow]slow[/] {slow['sql'][:120]} at {slow['site']}", "", str(slow["ms"]))
    for advice in db["advice"]:
        verified = "verified by the planner" if advice["verified"] else advice["reason"]
        table.add_row(f"[cyan]advice[/] {advice['ddl']}  ({verified})", str(advice["calls"]), "")
    return table


def _storage(report: dict[str, Any]) -> Table:
    storage = report["storage"]
    table = _table(
        f"Storage ({storage['location']} disk): {storage['stored_files']} files, "
        f"{storage['stored_bytes']:,} bytes",
        "show (owner)", "used", "quota",
    )  # fmt: skip
    for show, usage in storage["quota_by_show"].items():
        quota = f"{usage['quota']:,}" if usage["quota"] else "none"
        table.add_row(show, f"{usage['used']:,}", quota)
    return table


def _redis(report: dict[str, Any]) -> Table:
    redis = report["redis"]
    table = _table(f"Redis ({redis['in_use']})", "what", "value")
    table.add_row("what the demo did midway", str(redis["action"]))
    if redis["degraded_seconds"] is not None:
        table.add_row("unreachable for", f"{redis['degraded_seconds']} s")
    if redis["connections_dropped"] is not None:
        table.add_row("client connections dropped", str(redis["connections_dropped"]))
    table.add_row("warnings about Redis in the logs (app and workers)", str(redis["log_lines_about_redis"]))
    if redis["first_log_line"]:
        table.add_row("the first of them", redis["first_log_line"])
    return table
