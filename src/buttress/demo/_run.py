"""``run_demo``: the batch through buttress, through plain httpx, then through buttress again with a cache.

Order of events: start the upstream (five domains) and the ops server; send the batch through one
``AsyncHttpClient`` with fresh per-host policies (the process-wide metrics registry, so the ops server's
``/metrics`` shows the batch live), each GET memoised per URL in a memory cache that keeps successes
only, while probing the ops server halfway; zero the upstream's counters (each request's path restarts
its fate sequence, so the baseline meets the same first-attempt fates); send the same batch through a
plain ``httpx.AsyncClient``; send it once more through a new buttress client on the same policies and
cache, so only the first pass's failures reach the network; compare.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

import httpx
from rich.console import Console
from rich.table import Table

from buttress._own_loop import run_on_own_loop
from buttress.config import HttpSettings
from buttress.demo._batch import CachedFetcher, Progress, baseline_sender, run_pass
from buttress.demo._display import live_table, progress_table
from buttress.demo._hosts import NamedHosts
from buttress.demo._ops import OpsProbe, OpsServer, probe
from buttress.demo._report import (
    CachedPassReport,
    DemoReport,
    PassReport,
    cached_pass_report,
    pass_report,
    what_it_bought,
)
from buttress.demo._scenario import (
    CONCURRENCY,
    DOMAINS,
    Planned,
    demo_settings,
    plan,
    policy_notes,
    start_upstream,
)
from buttress.errors import ValidationError
from buttress.http import AsyncHttpClient, HostStats, HttpPolicies
from buttress.testing import Upstream

__all__ = ["MIN_REQUESTS", "run_demo"]

MIN_REQUESTS: Final = len(DOMAINS)
BASELINE_TIMEOUT: Final = 10.0

T = TypeVar("T")


def run_demo(
    *, requests: int = 500, seed: int = 7, progress: bool = True, console: Console | None = None
) -> DemoReport:
    """Run the demo and return its report (blocking; its event loop runs in a thread of its own).

    ``console`` receives the ops server's address and, when ``progress`` is true and it is a terminal,
    the live table; None means the standard output when ``progress`` is true, else print nothing.
    """
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < MIN_REQUESTS:
        raise ValidationError(
            f"requests must be an integer >= {MIN_REQUESTS} (one per domain), got {requests!r}; "
            "e.g. run_demo(requests=500)",
            field="requests",
        )
    if console is None and progress:
        console = Console(highlight=False, soft_wrap=True)
    started = time.perf_counter()
    from buttress.server import create_app  # noqa: PLC0415 - FastAPI only when the demo runs

    upstream = start_upstream(seed)
    try:
        with OpsServer(create_app()) as ops:
            if console is not None:
                console.print(f"ops server: {ops.url}  (try /metrics, /health, /breakers)", highlight=False)
            live = console if progress and console is not None and console.is_terminal else None
            batch = _Batch(upstream, plan(requests, seed), live)
            settings = demo_settings()
            ours, probed, theirs, cached = _run_in_thread(batch.all_passes(settings, ops.url))
    finally:
        upstream.stop()
    return DemoReport(
        seed=seed,
        requests=requests,
        concurrency=CONCURRENCY,
        policies=policy_notes(settings),
        domains={spec.name: spec.behaviour for spec in DOMAINS},
        ops=probed,
        buttress=ours,
        baseline=theirs,
        cached=cached,
        summary=[*what_it_bought(ours, theirs), cached.summary()],
        wall_seconds=round(time.perf_counter() - started, 3),
    )


class _Batch:
    """The planned requests against the running upstream, sent once per client."""

    def __init__(self, upstream: Upstream, planned: list[Planned], console: Console | None) -> None:
        self.upstream = upstream
        self.planned = planned
        self.console = console
        self.names = [spec.name for spec in DOMAINS]
        self.hosts = {spec.name: spec.host for spec in DOMAINS}
        self.base_urls = {name: f"http://{host}" for name, host in self.hosts.items()}
        self.addresses = {spec.host: ("127.0.0.1", upstream.port(spec.name)) for spec in DOMAINS}
        self.counts = Counter(request.domain for request in planned)
        self.fetcher = CachedFetcher()

    async def all_passes(
        self, settings: HttpSettings, ops_url: str
    ) -> tuple[PassReport, OpsProbe, PassReport, CachedPassReport]:
        policies = HttpPolicies(settings, store="memory")
        ours, probed = await self.through_buttress(policies, ops_url)
        # Each path's fate sequence restarts, so the baseline meets the same first-attempt fates.
        self.upstream.reset_counts()
        theirs = await self.through_httpx()
        return ours, probed, theirs, await self.through_cache(policies, ours)

    async def through_buttress(self, policies: HttpPolicies, ops_url: str) -> tuple[PassReport, OpsProbe]:
        """The batch through one AsyncHttpClient with fresh policies; the ops server is asked halfway."""
        progress = Progress(self.names)

        def hosts() -> dict[str, HostStats]:
            return {name: found[0] for name in self.names if (found := policies.stats(self.hosts[name]))}

        def render() -> Table:
            return progress_table("buttress: per-host policies", progress, self.counts, hosts())

        async with AsyncHttpClient(
            policies=policies, raise_for_status=True, transport=self.transport(policies.settings)
        ) as client:
            halfway = asyncio.create_task(_probe_when(ops_url, progress, len(self.planned) // 2))
            async with live_table(self.console, render):
                wall = await run_pass(
                    self.planned,
                    self.base_urls,
                    self.fetcher.sender(client),
                    progress,
                    concurrency=CONCURRENCY,
                )
            probed = await halfway
        denied = {name: _denied(policies, host) for name, host in self.hosts.items()}
        report = pass_report(
            "buttress", wall, progress.by_domain, self._calls(), hosts=hosts(), denied=denied
        )
        return report, probed

    async def through_httpx(self) -> PassReport:
        """The same batch through a plain httpx client: no retries, no policies."""
        progress = Progress(self.names)

        def render() -> Table:
            return progress_table("baseline: plain httpx", progress, self.counts, None)

        async with (
            httpx.AsyncClient(timeout=BASELINE_TIMEOUT, transport=self.transport()) as plain,
            live_table(self.console, render),
        ):
            wall = await run_pass(
                self.planned, self.base_urls, baseline_sender(plain), progress, concurrency=CONCURRENCY
            )
        return pass_report("baseline", wall, progress.by_domain, self._calls())

    async def through_cache(self, policies: HttpPolicies, uncached: PassReport) -> CachedPassReport:
        """The batch again through a buttress client on the same policies, the first pass's cache in front."""
        progress = Progress(self.names)
        cache = self.fetcher.cache
        hits = cache.stats_recorder.namespace(cache.namespace).hits
        hits_before, fetches_before = hits.value, self.fetcher.fetches
        calls_before = sum(self._calls().values())

        def render() -> Table:
            return progress_table("buttress + cache: the same batch again", progress, self.counts, None)

        async with (
            AsyncHttpClient(
                policies=policies, raise_for_status=True, transport=self.transport(policies.settings)
            ) as client,
            live_table(self.console, render),
        ):
            wall = await run_pass(
                self.planned, self.base_urls, self.fetcher.sender(client), progress, concurrency=CONCURRENCY
            )
        return cached_pass_report(
            wall,
            progress.by_domain,
            hits=hits.value - hits_before,
            sent=self.fetcher.fetches - fetches_before,
            upstream_calls=sum(self._calls().values()) - calls_before,
            uncached_wall_seconds=uncached.wall_seconds,
        )

    def transport(self, settings: HttpSettings | None = None) -> NamedHosts:
        """A connection pool that knows the demo's hosts, sized by ``settings`` as a buttress client's."""
        if settings is None:
            return NamedHosts(self.addresses, httpx.AsyncHTTPTransport())
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive,
            keepalive_expiry=settings.keepalive_expiry,
        )
        return NamedHosts(self.addresses, httpx.AsyncHTTPTransport(limits=limits))

    def _calls(self) -> dict[str, int]:
        return {name: self.upstream.calls(name) for name in self.names}


def _denied(policies: HttpPolicies, host: str) -> int:
    """Retries the host's retry budget refused."""
    budget = policies.for_host(host).budget
    return 0 if budget is None else budget.telemetry.counts()["denied"]


def _run_in_thread(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a fresh event loop in a worker thread and return its result.

    So ``run_demo`` works where a loop already runs (a notebook, an async app), where ``asyncio.run``
    refuses. It also keeps tracers sane: on Python 3.11, an httpx response read under ``asyncio.run``
    shows tracers a frame's return without its call (coverage's pure-Python tracer fails with "pop from
    empty list"; its C tracer then files later lines under the wrong frame), for every frame alive in
    that thread; here the thread ends with the loop.
    """
    return run_on_own_loop(main, thread_name="buttress-demo-loop")


async def _probe_when(url: str, progress: Progress, done: int) -> OpsProbe:
    await progress.reached(done)
    return await probe(url)
