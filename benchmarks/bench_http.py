"""HTTP client: buttress.http against raw httpx, on one loopback upstream, in the same run.

The server is :class:`buttress.testing.Upstream` in ``mode="process"``: one healthy domain answering a
small JSON body from a child process, so it does not share the GIL with the client being timed. Every
candidate of a table sends to the same URL of the same server, its candidates alternating in rounds.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import httpx

from benchmarks._harness import Row, Table, ameasure_ns, fmt, interleave, loop, measure_ns, rotations
from benchmarks._http_server import SocketGet, server_cpu_ns
from buttress.config import HttpPolicySettings, HttpSettings, LimiterSettings
from buttress.http import AsyncHttpClient, HttpClient, HttpPolicies, ResilientTransport
from buttress.http._core import limits
from buttress.testing import Upstream

__all__ = ["run"]

AsyncFn = Callable[[], Awaitable[object]]

RATE: Final = "1000000/s"  # far above what one client reaches here: the limiter never waits (checked)
BURST: Final = 1000
SETTINGS: Final = HttpSettings(
    default=HttpPolicySettings(limiter=LimiterSettings(rate=RATE, burst=BURST)),
)
"""Every policy on: retry (and its budget), breaker, limiter, bulkhead of 20 and the 30 s deadline."""
BUDGET: Final = 1.05
ROUNDS: Final = 7
REPEAT: Final = 3
MIN_TIME: Final = 0.05
FINE_ROUNDS: Final = 15  # rows 1-2: short samples, many rounds, as a few percent is what they measure
FINE_TIME: Final = 0.02
CPU_ROUNDS: Final = 11
CPU_CALLS: Final = 100
BATCH: Final = 50
CAP: Final = 20  # the bulkhead's default: requests in flight to one host
PROBES: Final = 3

# sync candidates
FULL: Final = "HttpClient"
TRANSPORT: Final = "httpx.Client(transport=ResilientTransport())"
RAW: Final = "httpx.Client()"
FRESH_RAW: Final = "new httpx.Client() per request"
NO_KEEPALIVE: Final = "httpx.Client(), keep-alive off"
FRESH_FULL: Final = "new HttpClient per request"
FLOOR: Final = "bare socket"
PER_REQUEST: Final = (FRESH_RAW, NO_KEEPALIVE, FRESH_FULL)
# async candidates
AFULL: Final = "AsyncHttpClient"
ARAW: Final = "httpx.AsyncClient"
ARAW_CAPPED: Final = f"httpx.AsyncClient, {CAP} connections"


# -- timing --------------------------------------------------------------------------------------------


async def _ainterleave(samplers: dict[str, AsyncFn], rounds: int = ROUNDS) -> dict[str, float]:
    """``interleave`` (rotating rounds, median per candidate) in the running event loop.

    Each sample is one :func:`ameasure_ns` of :data:`REPEAT` loops.
    """
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    for name in rotations(list(samplers), rounds):
        samples[name].append(await ameasure_ns(samplers[name], repeat=REPEAT))
    return {name: statistics.median(values) for name, values in samples.items()}


def _sampler(fn: Callable[[], object], min_time: float) -> Callable[[], float]:
    return lambda: measure_ns(fn, repeat=REPEAT, min_time=min_time)


def _cpu_ns(fn: Callable[[], object]) -> float:
    """This process's CPU nanoseconds per call: the least of :data:`REPEAT` loops of :data:`CPU_CALLS`.

    The least, as other processes can only add to it (cache misses, a preempted virtual CPU).
    """
    samples = []
    for _ in range(REPEAT):
        start = time.process_time_ns()
        loop(fn, CPU_CALLS)
        samples.append((time.process_time_ns() - start) / CPU_CALLS)
    return min(samples)


# -- checks: each candidate is what its row says ------------------------------------------------------------


def _opens(upstream: Upstream, send: Callable[[], object]) -> int:
    """Connections the upstream accepted while ``send`` ran :data:`PROBES` times."""
    before = upstream.connections()
    for _ in range(PROBES):
        send()
    return upstream.connections() - before


def _check_connections(
    upstream: Upstream, pooled: Sequence[Callable[[], object]], fresh: Sequence[Callable[[], object]]
) -> None:
    for send in pooled:
        if (opened := _opens(upstream, send)) != 0:
            raise RuntimeError(f"a pooled candidate opened {opened} connections in {PROBES} requests")
    for send in fresh:
        if (opened := _opens(upstream, send)) != PROBES:
            raise RuntimeError(f"a per-request candidate opened {opened} connections in {PROBES} requests")


def _check_policies(policies: HttpPolicies) -> None:
    """The policies were on and never acted: no retry, refusal, limiter wait or non-2xx answer."""
    for stats in policies.stats():
        if (
            stats.retries
            or stats.rejected
            or stats.limiter_waits
            or set(stats.status_classes) != {"2xx"}
            or stats.breaker_state != "closed"
            or stats.in_flight
        ):
            raise RuntimeError(f"the policies acted during the benchmark: {stats}")
    if not policies.stats():
        raise RuntimeError("the policies saw no request")


def _ok(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"the upstream answered {response.status_code}")


# -- sync -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    """Nanoseconds per request of the sync candidates, each group interleaved on its own."""

    policies: dict[str, float]
    """Rows 1-2 and the bare socket: many short rounds, as their differences are small."""
    cpu: dict[str, float]
    """The client's own CPU time per request (``time.process_time``): the server and waits left out."""
    pooling: dict[str, float]
    """Rows 3-5: pooled against per-request clients and connections."""
    server: dict[str, float]
    """The upstream's CPU per request, under raw httpx and under bare-socket traffic."""


def _sync_times(upstream: Upstream, url: str) -> SyncResult:
    """Every sync candidate, in three interleaved groups; and the server's CPU per request."""
    policies, transport_policies, fresh_policies = (HttpPolicies(SETTINGS) for _ in range(3))
    floor = SocketGet("127.0.0.1", upstream.port())

    def fresh_raw() -> httpx.Response:
        with httpx.Client() as client:
            return client.get(url)

    def fresh_full() -> httpx.Response:
        with HttpClient(policies=fresh_policies) as client:
            return client.get(url)

    try:
        with (
            HttpClient(policies=policies) as full,
            httpx.Client(transport=ResilientTransport(policies=transport_policies)) as wrapped,
            httpx.Client() as raw,
            httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as no_keepalive,
        ):
            requests: dict[str, Callable[[], httpx.Response]] = {
                FULL: lambda: full.get(url),
                TRANSPORT: lambda: wrapped.get(url),
                RAW: lambda: raw.get(url),
                FRESH_RAW: fresh_raw,
                NO_KEEPALIVE: lambda: no_keepalive.get(url),
                FRESH_FULL: fresh_full,
            }
            for send in requests.values():  # warm up: pools hold a connection, caches are built
                _ok(send())
            pooled: list[Callable[[], object]] = [requests[FULL], requests[TRANSPORT], requests[RAW], floor]
            _check_connections(upstream, pooled, [requests[name] for name in PER_REQUEST])
            candidates: dict[str, Callable[[], object]] = {**requests, FLOOR: floor}
            result = SyncResult(
                policies=interleave(
                    {name: _sampler(candidates[name], FINE_TIME) for name in (FULL, TRANSPORT, RAW, FLOOR)},
                    FINE_ROUNDS,
                ),
                cpu=interleave(
                    {name: functools.partial(_cpu_ns, candidates[name]) for name in (FULL, TRANSPORT, RAW)},
                    CPU_ROUNDS,
                ),
                pooling=interleave(
                    {name: _sampler(candidates[name], MIN_TIME) for name in (RAW, FULL, *PER_REQUEST)},
                    ROUNDS,
                ),
                server={RAW: server_cpu_ns(upstream, requests[RAW]), FLOOR: server_cpu_ns(upstream, floor)},
            )
    finally:
        floor.close()
    for used in (policies, transport_policies, fresh_policies):
        _check_policies(used)
    return result


# -- async ------------------------------------------------------------------------------------------------


def _batch(client: AsyncHttpClient | httpx.AsyncClient, url: str) -> AsyncFn:
    """:data:`BATCH` concurrent GETs through ``client`` (one ``asyncio.gather``), each checked."""

    async def batch() -> None:
        for response in await asyncio.gather(*(client.get(url) for _ in range(BATCH))):
            _ok(response)

    return batch


async def _async_times(url: str) -> dict[str, float]:
    """Nanoseconds per request within batches of :data:`BATCH` concurrent GETs; one event loop for all."""
    policies = HttpPolicies(SETTINGS)
    capped = httpx.Limits(max_connections=CAP, max_keepalive_connections=CAP)
    async with (
        AsyncHttpClient(policies=policies) as full,
        httpx.AsyncClient(limits=limits(SETTINGS)) as raw,
        httpx.AsyncClient(limits=capped) as raw_capped,
    ):
        batches = {AFULL: _batch(full, url), ARAW: _batch(raw, url), ARAW_CAPPED: _batch(raw_capped, url)}
        for batch in batches.values():  # warm up: open the pools' connections
            await batch()
        times = await _ainterleave(batches)
    _check_policies(policies)
    return {name: ns / BATCH for name, ns in times.items()}


# -- table ------------------------------------------------------------------------------------------------


def run() -> Table:
    with Upstream(mode="process") as upstream:
        url = upstream.url()
        sync = _sync_times(upstream, url)
        atimes = asyncio.run(_async_times(url))
        outcomes = upstream.outcomes()
    if set(outcomes) != {"200"}:
        raise RuntimeError(f"the upstream answered something else than 200: {outcomes}")
    fine, pooling = sync.policies, sync.pooling
    rows = [
        Row("sync GET, HttpClient with every policy on", fine[FULL], {"httpx": fine[RAW]}),
        Row("sync GET, ResilientTransport in a plain httpx.Client", fine[TRANSPORT], {"httpx": fine[RAW]}),
        Row(
            "sync GET, pooled httpx.Client vs a new httpx.Client per request",
            pooling[RAW],
            {"httpx": pooling[FRESH_RAW]},
        ),
        Row(
            "sync GET, pooled httpx.Client vs a new connection per request (keep-alive off)",
            pooling[RAW],
            {"httpx": pooling[NO_KEEPALIVE]},
        ),
        Row(
            "sync GET, pooled HttpClient vs a new HttpClient per request",
            pooling[FULL],
            {"httpx": pooling[FRESH_FULL]},
        ),
        Row(f"async, {BATCH} concurrent GETs (per request)", atimes[AFULL], {"httpx": atimes[ARAW]}),
        Row(
            f"async, {BATCH} concurrent GETs, httpx capped at {CAP} connections (per request)",
            atimes[AFULL],
            {"httpx": atimes[ARAW_CAPPED]},
        ),
    ]
    return Table(
        title="HTTP client (buttress.http) vs raw httpx on a loopback server",
        anchors=["httpx"],
        rows=rows,
        notes=_notes(sync, atimes),
    )


def _more(ns: float) -> str:
    """A difference in time, signed: ``+12.00 µs`` more, ``-3.10 µs`` less."""
    return ("+" if ns >= 0 else "-") + fmt(abs(ns))


def _notes(sync: SyncResult, atimes: dict[str, float]) -> list[str]:
    fine, cpu, pooling, server = sync.policies, sync.cpu, sync.pooling, sync.server
    raw = fine[RAW]
    ratio = fine[FULL] / raw
    notes = [
        (
            f"Budget: the sync HttpClient with every policy on <= {BUDGET:.2f}x raw httpx. Measured "
            f"{ratio:.2f}x ({_more(fine[FULL] - raw)} per request): "
            f"{'met' if ratio <= BUDGET else 'MISSED'}. The client's own CPU per request "
            f"(`time.process_time`; {CPU_ROUNDS} interleaved rounds, each the least of {REPEAT} loops of "
            f"{CPU_CALLS} requests; the median round. It leaves out the server and the waits, and moves "
            "less with other processes' load): "
            f"HttpClient {fmt(cpu[FULL])}, ResilientTransport {fmt(cpu[TRANSPORT])}, raw httpx "
            f"{fmt(cpu[RAW])}: {_more(cpu[FULL] - cpu[RAW])} and {_more(cpu[TRANSPORT] - cpu[RAW])} "
            f"({cpu[FULL] / cpu[RAW]:.2f}x and {cpu[TRANSPORT] / cpu[RAW]:.2f}x)."
        ),
        (
            "Server: `buttress.testing.Upstream(mode='process')`, one healthy domain on 127.0.0.1 served "
            "from a child process, no faults; `GET /` answers 200 with a ~70-byte JSON body (every answer "
            f"checked). The server used {fmt(server[RAW])} of CPU per request under raw httpx traffic and "
            f"{fmt(server[FLOOR])} under bare-socket traffic (its process's user + system time over a 1 s "
            f"burst each). A bare kept-alive socket sending the same GET takes {fmt(fine[FLOOR])} a round "
            f"trip (timed with rows 1-2): the floor under every client here, so raw httpx's own work is "
            f"about {fmt(raw - fine[FLOOR])} a request on this machine."
        ),
        (
            f"Row 1: buttress `HttpClient(policies=HttpPolicies(settings))` with retry (3 attempts, budget "
            f"0.2), breaker (defaults), limiter `{RATE}` burst {BURST}, bulkhead 20 and the 30 s deadline, "
            "`client.get(url)`; the anchor is a reused `httpx.Client()` `.get(url)`. Both keep one pooled "
            "connection (warmed up, and checked: no pooled candidate opened a connection). After the run "
            "every host's stats show no retry, refusal or limiter wait, a closed breaker and only 2xx."
        ),
        (
            "Row 2: a plain `httpx.Client(transport=ResilientTransport(policies=...))` with the same "
            "policies (the transport alone, without HttpClient's error mapping and raise_for_status), "
            f"against the same raw `httpx.Client()`: {_more(fine[TRANSPORT] - raw)} per request."
        ),
        (
            "Rows 3-5 price connection reuse (timed together, apart from rows 1-2): the buttress column "
            "is the pooled client, the httpx column the per-request one, so the ratio is what pooling "
            "keeps (saving = 1 - ratio; the seed claimed 27-40%). Row 3: a reused `httpx.Client()` "
            "against `with httpx.Client() as c: c.get(url)` per request, a new connection and a new "
            "client; building the client is most of it (its SSL context loads the CA bundle), "
            f"{fmt(pooling[FRESH_RAW] - pooling[NO_KEEPALIVE])} more than row 4. Row 4: against one "
            "`httpx.Client(limits=Limits(max_keepalive_connections=0))`, which opens a new connection per "
            "request and nothing else: the saving of the connection alone. Row 5: the pooled HttpClient "
            "of row 1 against `with HttpClient(policies=shared) as c: c.get(url)` per request. Each "
            "per-request candidate was checked to open one connection per request."
        ),
        (
            f"Rows 6-7: a sample is `asyncio.gather` of {BATCH} `get(url)` calls, divided by {BATCH}. "
            "`AsyncHttpClient` with the settings of row 1 against `httpx.AsyncClient(limits=...)` with the "
            "same pool (100 connections, 100 kept alive, 5 s expiry; row 6) and against one capped at "
            f"{CAP} connections (row 7). buttress's bulkhead lets {CAP} requests run at once and queues "
            "the others before the pool; raw httpx queues inside httpcore's pool, whose bookkeeping "
            "grows with the requests waiting in it. One event loop runs every async sample: pooled "
            "connections live across samples."
        ),
        (
            f"Method: candidates alternate in rounds, in rotating order, so load from other processes on "
            f"this shared 2-core machine hits every candidate of a row alike; each cell is the median over "
            f"the rounds of a sample's median. Rows 1-2 (and the bare socket): {FINE_ROUNDS} rounds of "
            f"`measure_ns` ({REPEAT} loops calibrated to ~{FINE_TIME * 1000:.0f} ms, GC paused). Rows "
            f"3-5: {ROUNDS} rounds, loops of ~{MIN_TIME * 1000:.0f} ms. Rows 6-7: {ROUNDS} rounds of the "
            f"same measure inside one event loop. Absolute times move between runs: read the ratios."
        ),
    ]
    if importlib.util.find_spec("sniffio") is None:
        notes.append(
            "sniffio is not installed (anyio 4.x no longer needs it), so httpcore 1.0.9 tries "
            "`import sniffio` and fails, searching sys.path, each time it takes an async lock: the async "
            "rows pay that on both sides."
        )
    return notes
