"""The demo's report for people: the policies, side-by-side tables per domain, the cache, the summary."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from buttress.demo._hosts import host_name
from buttress.demo._report import CachedPassReport, DemoReport, PassStats

__all__ = ["explain_warning", "render_report"]

_TOP_FAILURES = 2


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pair(ours: str, theirs: str) -> str:
    return f"{ours} / {theirs}"


def _failures(stats: PassStats) -> str:
    kinds = list(stats.failures.items())
    shown = ", ".join(f"{kind}: {count}" for kind, count in kinds[:_TOP_FAILURES])
    more = len(kinds) - _TOP_FAILURES
    return shown + (f", +{more} more" if more > 0 else "")


def _rows(report: DemoReport) -> list[tuple[str, PassStats, PassStats]]:
    ours, theirs = report.buttress, report.baseline
    rows = [(name, stats, theirs.domains[name]) for name, stats in ours.domains.items()]
    return [*rows, ("all", ours.overall, theirs.overall)]


def outcome_table(report: DemoReport) -> Table:
    """What the callers got, per domain: buttress / httpx side by side."""
    table = Table(
        title=f"{report.requests} GETs, {report.concurrency} in flight, seed {report.seed}: buttress / httpx",
        title_justify="left",
    )
    for column in ("domain", "success", "server calls"):
        table.add_column(column, justify="left" if column == "domain" else "right", no_wrap=True)
    table.add_column("failures with buttress")
    table.add_column("failures with httpx")
    for name, ours, theirs in _rows(report):
        table.add_row(
            name,
            _pair(f"{ours.success_rate:.0%}", f"{theirs.success_rate:.0%}"),
            _pair(str(ours.upstream_calls), str(theirs.upstream_calls)),
            _failures(ours),
            _failures(theirs),
            style="bold" if name == "all" else None,
            end_section=name == _rows(report)[-2][0],
        )
    return table


def policy_table(report: DemoReport) -> Table:
    """What the policies did per domain (the buttress pass only: plain httpx has none)."""
    table = Table(title="what buttress did", title_justify="left")
    table.add_column("domain", no_wrap=True)
    for column in ("retries", "retries denied", "breaker opened", "short-circuited", "limiter waits"):
        # Headers wrap between words, never inside one.
        table.add_column(column, justify="right", width=max(len(word) for word in column.split()))
    rows = _rows(report)
    for name, mine, _ in rows:
        table.add_row(
            name,
            str(mine.retries),
            str(mine.retries_denied),
            str(mine.breaker_openings),
            str(mine.short_circuited),
            str(mine.limiter_waits),
            style="bold" if name == "all" else None,
            end_section=name == rows[-2][0],
        )
    return table


def latency_table(report: DemoReport) -> Table:
    """What each client's callers waited, retries and limiter waits included."""
    ours, theirs = report.buttress, report.baseline
    table = Table(
        title="latency in ms: buttress / httpx",
        title_justify="left",
        caption=f"wall time: buttress {ours.wall_seconds:.1f} s, httpx {theirs.wall_seconds:.1f} s",
        caption_justify="left",
    )
    table.add_column("domain", no_wrap=True)
    for column in ("p50", "p95", "p99"):
        table.add_column(column, justify="right", no_wrap=True)
    rows = _rows(report)
    for name, mine, plain in rows:
        table.add_row(
            name,
            _pair(_ms(mine.p50_ms), _ms(plain.p50_ms)),
            _pair(_ms(mine.p95_ms), _ms(plain.p95_ms)),
            _pair(_ms(mine.p99_ms), _ms(plain.p99_ms)),
            style="bold" if name == "all" else None,
            end_section=name == rows[-2][0],
        )
    return table


def cache_table(cached: CachedPassReport) -> Table:
    """The cached pass next to the uncached buttress pass."""
    table = Table(
        title=f"the same {cached.requests} GETs again through buttress, a memory cache in front",
        title_justify="left",
        caption="the first buttress pass filled it (key: the URL); failures are not cached, so they were "
        "sent again; wall time: this pass / the first buttress pass",
        caption_justify="left",
    )
    for column in ("from\ncache", "sent", "hit\nrate", "success", "server\ncalls", "wall time", "saved"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_row(
        str(cached.from_cache),
        str(cached.sent),
        f"{cached.hit_rate:.1%}",
        f"{cached.success_rate:.0%}",
        str(cached.upstream_calls),
        f"{cached.wall_seconds:.2f} s / {cached.uncached_wall_seconds:.1f} s",
        f"{cached.saved_seconds:.1f} s",
    )
    return table


def render_report(report: DemoReport) -> RenderableType:
    """Everything ``buttress demo http`` prints at the end."""
    header = Text()
    for name, behaviour in report.domains.items():
        header.append(f"  {name} ({host_name(name)}): {behaviour}\n")
    for line in report.policies:
        header.append(f"policies {line}\n")
    summary = Text()
    summary.append("what the policies and the cache bought:\n", style="bold")
    for line in report.summary:
        summary.append(f"  - {line}\n")
    ops = report.ops
    seen = (
        f"/health {ops.health_status} ({ops.health_status_code}), "
        f"{ops.http_metric_samples} buttress_http_* samples in /metrics"
        if ops.error is None
        else ops.error
    )
    footer = Text(f"ops server {ops.url}, asked halfway: {seen}")
    for warning in ops.health_warnings:
        footer.append(f"\n  {explain_warning(warning)}", style="yellow")
    tables = (outcome_table(report), policy_table(report), latency_table(report), cache_table(report.cached))
    return Group(Text("upstreams:"), header, *tables, summary, footer)


def explain_warning(warning: str) -> str:
    """One line saying what a health warning of the demo's ops server means (``<check>: <output>``)."""
    meaning = (
        f"health warning, {warning}: an optional check past its threshold, so /health still answers 200 "
        "(only a failed critical check answers 503)"
    )
    if warning.startswith("system: cpu"):
        meaning += "; the batch, its five upstreams and this server share this machine's CPU and keep it busy"
    return meaning
