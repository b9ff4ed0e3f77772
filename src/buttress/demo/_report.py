"""The demo's report: per-domain and overall numbers of each pass, the cached pass, and what it all bought.

``DemoReport.to_dict()`` is what ``buttress demo http --json`` prints; its keys are stable (documented on
:class:`DemoReport`), so scripts and tests can read it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from buttress.demo._batch import Outcome
from buttress.demo._ops import OpsProbe
from buttress.http import HostStats

__all__ = [
    "CachedPassReport",
    "DemoReport",
    "PassReport",
    "PassStats",
    "cached_pass_report",
    "pass_report",
    "percentile",
    "what_it_bought",
]


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values (None for none): a value that was really seen."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


@dataclass(frozen=True, slots=True)
class PassStats:
    """One domain (or all of them) in one pass.

    ``attempts`` are the requests that reached the wire (retries included); ``upstream_calls`` the ones
    the server answered or dropped (a refused connection never reaches it). Latencies cover every call,
    failures included: a short-circuited call fails in microseconds, which is the point of a breaker.
    """

    requests: int
    succeeded: int
    failed: int
    success_rate: float
    failures: dict[str, int]
    attempts: int
    upstream_calls: int
    retries: int
    retries_denied: int
    """Retries the host's retry budget refused (at most 20% of calls + 10 per 10 s by default)."""
    breaker_openings: int
    short_circuited: int
    limiter_waits: int
    limiter_wait_seconds: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @classmethod
    def of(
        cls,
        outcomes: Sequence[Outcome],
        *,
        upstream_calls: int,
        host: HostStats | None,
        retries_denied: int = 0,
    ) -> PassStats:
        """The numbers of a pass's outcomes; ``host`` is the buttress client's view (None: plain httpx)."""
        succeeded = sum(1 for outcome in outcomes if outcome.ok)
        failures = Counter(outcome.kind for outcome in outcomes if not outcome.ok)
        ordered = sorted(outcome.seconds for outcome in outcomes)
        return cls(
            requests=len(outcomes),
            succeeded=succeeded,
            failed=len(outcomes) - succeeded,
            success_rate=round(succeeded / len(outcomes), 4) if outcomes else 0.0,
            failures=dict(failures.most_common()),
            attempts=len(outcomes) if host is None else host.requests,
            upstream_calls=upstream_calls,
            retries=0 if host is None else host.retries,
            retries_denied=retries_denied,
            breaker_openings=0 if host is None else host.breaker_openings,
            short_circuited=0 if host is None else host.rejected.get("breaker", 0),
            limiter_waits=0 if host is None else host.limiter_waits,
            limiter_wait_seconds=0.0 if host is None else round(host.limiter_wait_seconds, 3),
            p50_ms=_ms(percentile(ordered, 0.50)),
            p95_ms=_ms(percentile(ordered, 0.95)),
            p99_ms=_ms(percentile(ordered, 0.99)),
        )

    @classmethod
    def total(cls, parts: Sequence[PassStats], outcomes: Sequence[Outcome]) -> PassStats:
        """All domains together: counts summed, latencies over every outcome."""
        whole = cls.of(outcomes, upstream_calls=sum(part.upstream_calls for part in parts), host=None)
        return cls(
            **{
                **asdict(whole),
                "attempts": sum(part.attempts for part in parts),
                "retries": sum(part.retries for part in parts),
                "retries_denied": sum(part.retries_denied for part in parts),
                "breaker_openings": sum(part.breaker_openings for part in parts),
                "short_circuited": sum(part.short_circuited for part in parts),
                "limiter_waits": sum(part.limiter_waits for part in parts),
                "limiter_wait_seconds": round(sum(part.limiter_wait_seconds for part in parts), 3),
            }
        )


@dataclass(frozen=True, slots=True)
class PassReport:
    """One pass over the batch: ``buttress`` (the client with policies) or ``baseline`` (plain httpx)."""

    client: str
    wall_seconds: float
    overall: PassStats
    domains: dict[str, PassStats]

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "wall_seconds": self.wall_seconds,
            "overall": asdict(self.overall),
            "domains": {name: asdict(stats) for name, stats in self.domains.items()},
        }


def pass_report(
    client: str,
    wall_seconds: float,
    outcomes: Mapping[str, Sequence[Outcome]],
    upstream_calls: Mapping[str, int],
    *,
    hosts: Mapping[str, HostStats] | None = None,
    denied: Mapping[str, int] | None = None,
) -> PassReport:
    """The report of one pass from its outcomes by domain and the upstream's and client's counts."""
    domains = {
        name: PassStats.of(
            found,
            upstream_calls=upstream_calls.get(name, 0),
            host=None if hosts is None else hosts.get(name),
            retries_denied=0 if denied is None else denied.get(name, 0),
        )
        for name, found in outcomes.items()
    }
    everything = [outcome for found in outcomes.values() for outcome in found]
    overall = PassStats.total(list(domains.values()), everything)
    return PassReport(client, round(wall_seconds, 3), overall, domains)


@dataclass(frozen=True, slots=True)
class CachedPassReport:
    """The same batch again through the buttress client, with the first pass's successes in a cache.

    ``from_cache`` are the GETs the cache answered (its own hit counter); ``sent`` the ones sent
    through the client (failures are not cached, so they are asked again; a breaker may still refuse
    them); ``upstream_calls`` what reached the servers, retries included. ``saved_seconds`` is the
    uncached buttress pass's wall time minus this one's.
    """

    requests: int
    from_cache: int
    sent: int
    hit_rate: float
    succeeded: int
    success_rate: float
    upstream_calls: int
    wall_seconds: float
    uncached_wall_seconds: float
    saved_seconds: float
    p50_ms: float | None
    p95_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for the report's summary."""
        return (
            f"cache: {self.from_cache} of {self.requests} GETs served from memory ({self.hit_rate:.0%} hit "
            f"rate), {self.sent} sent again (failures are not cached); {self.wall_seconds:.2f} s "
            f"instead of {self.uncached_wall_seconds:.1f} s ({self.saved_seconds:.1f} s saved)"
        )


def cached_pass_report(
    wall_seconds: float,
    outcomes: Mapping[str, Sequence[Outcome]],
    *,
    hits: int,
    sent: int,
    upstream_calls: int,
    uncached_wall_seconds: float,
) -> CachedPassReport:
    """The report of the cached pass from its outcomes and the cache's and the fetcher's counts."""
    everything = [outcome for found in outcomes.values() for outcome in found]
    succeeded = sum(1 for outcome in everything if outcome.ok)
    ordered = sorted(outcome.seconds for outcome in everything)
    requests = len(everything)
    return CachedPassReport(
        requests=requests,
        from_cache=hits,
        sent=sent,
        hit_rate=round(hits / requests, 4) if requests else 0.0,
        succeeded=succeeded,
        success_rate=round(succeeded / requests, 4) if requests else 0.0,
        upstream_calls=upstream_calls,
        wall_seconds=round(wall_seconds, 3),
        uncached_wall_seconds=uncached_wall_seconds,
        saved_seconds=round(uncached_wall_seconds - wall_seconds, 3),
        p50_ms=_ms(percentile(ordered, 0.50)),
        p95_ms=_ms(percentile(ordered, 0.95)),
    )


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What ``buttress demo http`` did and measured.

    ``to_dict()`` keys: ``seed``, ``requests``, ``concurrency``, ``policies`` (lines: the defaults kept
    and what the demo changed), ``domains`` (name -> how that upstream misbehaves), ``ops`` (the ops
    server's ``url`` and what it answered mid-run: ``health_status_code``, ``health_status``,
    ``http_metric_samples``, ``error``), ``buttress`` and ``baseline`` (each: ``client``,
    ``wall_seconds``, ``overall`` and ``domains`` -> name -> the :class:`PassStats` fields), ``cached``
    (the same batch again with a cache in front: the :class:`CachedPassReport` fields), ``summary``
    (lines: what the policies and the cache bought) and ``wall_seconds`` (the whole demo).
    """

    seed: int
    requests: int
    concurrency: int
    policies: list[str]
    domains: dict[str, str]
    ops: OpsProbe
    buttress: PassReport
    baseline: PassReport
    cached: CachedPassReport
    summary: list[str]
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "requests": self.requests,
            "concurrency": self.concurrency,
            "policies": list(self.policies),
            "domains": dict(self.domains),
            "ops": self.ops.to_dict(),
            "buttress": self.buttress.to_dict(),
            "baseline": self.baseline.to_dict(),
            "cached": self.cached.to_dict(),
            "summary": list(self.summary),
            "wall_seconds": self.wall_seconds,
        }


def _rate(stats: PassStats) -> str:
    return f"{stats.success_rate:.1%}"


def _retries(count: int) -> str:
    return f"{count} retr{'y' if count == 1 else 'ies'}"


def what_it_bought(buttress: PassReport, baseline: PassReport) -> list[str]:
    """A few lines comparing the passes where the policies made a difference."""
    ours, theirs = buttress.overall, baseline.overall
    points = (ours.success_rate - theirs.success_rate) * 100
    lines = [f"success rate {_rate(theirs)} -> {_rate(ours)} ({points:+.1f} points) with the same batch"]
    flaky, flaky_base = buttress.domains.get("flaky"), baseline.domains.get("flaky")
    if flaky is not None and flaky_base is not None and flaky.retries:
        budget = f"; the retry budget refused {flaky.retries_denied} more" if flaky.retries_denied else ""
        lines.append(
            f"flaky: {_retries(flaky.retries)} took it from {_rate(flaky_base)} to {_rate(flaky)} "
            f"({flaky_base.failed} -> {flaky.failed} failures{budget})"
        )
    dead = buttress.domains.get("dead")
    if dead is not None and dead.breaker_openings:
        lines.append(
            f"dead: the breaker opened after {dead.attempts} connection attempts; {dead.short_circuited} "
            "calls failed fast without touching the network"
        )
    limited, limited_base = buttress.domains.get("limited"), baseline.domains.get("limited")
    if limited is not None and limited_base is not None and limited.limiter_waits:
        average = limited.limiter_wait_seconds / limited.limiter_waits
        lines.append(
            f"limited: the client limiter held back {limited.limiter_waits} calls "
            f"({average:.1f} s on average) and {_retries(limited.retries)} waited out Retry-After; "
            "429s reaching the caller "
            f"{limited_base.failures.get('429', 0)} -> {limited.failures.get('429', 0)}"
        )
    return lines
