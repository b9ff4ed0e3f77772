"""RELIABILITY.md: the soak's checks, what each failure drill cost, the machine and the command."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path

from benchmarks.__main__ import _machine
from benchmarks.soak_checks import INVALIDATION_WINDOW, SLOW_DEFER_S, SLOW_JOB_S, Outcome

__all__ = ["write_report"]

ROOT = Path(__file__).resolve().parent.parent
_HEADER = (
    "| drill | at (s) | what | window (s) | degraded (s) | errors seen by callers | slowest defer (s) "
    "| slowest job (s) | longest limiter gap (s) | stale reads |"
)


def _commit(root: Path) -> str:
    try:
        found = subprocess.run(
            ["/usr/bin/env", "git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return found.stdout.strip()


def write_report(path: Path, outcome: Outcome, command: str) -> None:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(outcome.began))
    on_cluster = "--redis-cluster" in command
    redis = "one Redis Cluster (3 primaries, 3 replicas)" if on_cluster else "one Redis"
    redis_drill = "SIGKILLs a Redis primary" if on_cluster else "SIGKILLs and restarts Redis"
    lines = [
        "# Reliability",
        "",
        f"The multi-node soak (docs/soak.md): {outcome.nodes} nodes, each with its own ops server and jobs",
        f"worker, share {redis} and one PostgreSQL under a mixed load while a chaos loop SIGKILLs workers,",
        f"trips a breaker from one node, {redis_drill} and freezes the database. Every figure",
        "below is from that one run.",
        "",
        f"- Command: `{command}`",
        f"- Run: {when}, {outcome.ended - outcome.began:.0f} s of load, commit {_commit(ROOT)}",
        f"- Machine: {_machine()}, {platform.system()} {platform.release()}",
        f"- Verdict: **{'PASS' if outcome.passed else 'FAIL'}**",
        "",
        "## Checks",
        "",
        "| check | figure | result |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {c.name} | {c.figure} | {'pass' if c.passed else '**FAIL**'} |" for c in outcome.checks]
    lines += [
        "",
        "## What each failure drill cost",
        "",
        "Each row covers the window from the drill to the next one (the baseline: the load before any",
        "drill). Degraded seconds: the union of moments a caller saw an error, a defer took over",
        f"{SLOW_DEFER_S:g} s, a job waited over {SLOW_JOB_S:g} s from defer to done (slow defers and jobs",
        "count where they finished), or the shared limiter admitted nothing for over 1 s. Stale reads:",
        f"reads that returned a version older than one written more than {INVALIDATION_WINDOW:g} s before.",
        "",
        _HEADER,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cost in outcome.costs:
        errors = ", ".join(f"{name} x{count}" for name, count in sorted(cost.errors.items())) or "none"
        lines.append(
            f"| {cost.drill.name} | {cost.drill.start - outcome.began:.1f} | {cost.drill.detail or '-'} "
            f"| {cost.window:.1f} | {cost.degraded_s:.2f} | {errors} | {cost.slowest_defer_s:.2f} "
            f"| {cost.slowest_job_s:.2f} | {cost.limiter_gap_s:.2f} | {cost.stale_reads} |"
        )
    lines += [
        "",
        "## Settings of the run",
        "",
        "`BUTTRESS_RESILIENCE__STORE=redis`, `BUTTRESS_RESILIENCE__REDIS_POLICY=closed` (a global limit that",
        "must hold even while Redis is down; with `local`, each node would enforce it alone meanwhile),",
        f"`BUTTRESS_CACHE__BACKEND=tiered`, `BUTTRESS_CACHE__L1_TTL={INVALIDATION_WINDOW:g}`,",
        "`BUTTRESS_JOBS__LEASE=5`.",
        "Events logged by the nodes: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(outcome.counts.items()))
        + ".",
        "",
    ]
    path.write_text("\n".join(lines))
