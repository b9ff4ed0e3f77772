"""One pass of the batch: every planned GET through one sender, at most ``concurrency`` at a time.

A sender turns a URL into an outcome kind (``"ok"``, a status such as ``"503"``, or an error's name), so
the buttress client (with its cache in front), the plain httpx baseline and the cached pass run through
the same loop and are measured the same way: ``time.perf_counter`` around the whole call, retries, waits
and cache lookups included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

from buttress.cache import Cache, MemoryBackend
from buttress.demo._scenario import Planned
from buttress.errors import ButtressError, UpstreamError, UpstreamStatusError
from buttress.http import AsyncHttpClient

__all__ = [
    "OK",
    "CachedFetcher",
    "Fetched",
    "Outcome",
    "Progress",
    "Send",
    "baseline_sender",
    "fetch",
    "run_pass",
]

OK = "ok"

Send = Callable[[str], Awaitable[str]]
"""Sends one GET; returns ``OK`` or the failure kind. Never raises for an upstream's failure."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request of a pass ended, and how long the caller waited for it."""

    domain: str
    kind: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.kind == OK


class Progress:
    """The outcomes of a pass so far, by domain: what the live table and the report read."""

    def __init__(self, domains: Iterable[str]) -> None:
        self.by_domain: dict[str, list[Outcome]] = {name: [] for name in domains}
        self.done = 0
        self._waiters: list[tuple[int, asyncio.Event]] = []

    def add(self, outcome: Outcome) -> None:
        self.by_domain[outcome.domain].append(outcome)
        self.done += 1
        for count, event in self._waiters:
            if self.done >= count:
                event.set()

    async def reached(self, count: int) -> None:
        """Return once ``count`` requests are done (at once if they already are)."""
        if self.done >= count:
            return
        event = asyncio.Event()
        self._waiters.append((count, event))
        await event.wait()


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one GET through the buttress client gave its caller: the outcome kind and the body's size."""

    kind: str
    status: int | None = None
    length: int = 0


async def fetch(client: AsyncHttpClient, url: str) -> Fetched:
    """One GET; a status error counts by its status, other failures by their kind. Never raises."""
    try:
        response = await client.get(url)
    except UpstreamStatusError as error:
        return Fetched(str(error.status_code), error.status_code)
    except UpstreamError as error:
        # UpstreamError wraps httpx's failure; its name (ConnectError, ReadTimeout) says more.
        return Fetched(str(error.context.get("error", type(error).__name__)))
    except ButtressError as error:  # refused before the wire: CircuitOpen, RateLimited, ...
        return Fetched(type(error).__name__)
    return Fetched(OK, response.status_code, len(response.content))


def _failed(fetched: Fetched) -> bool:
    return fetched.kind != OK


class CachedFetcher:
    """GETs through the buttress client, memoised per URL in an in-memory cache; failures are not cached.

    The first buttress pass goes through it, so every URL it got fills the cache; the cached pass asks
    again and only the failures reach the network. ``fetches`` counts the GETs actually sent.
    """

    def __init__(self) -> None:
        self.cache = Cache(MemoryBackend(), namespace="demo")
        self.fetches = 0
        self._client: AsyncHttpClient | None = None
        self._get = self.cache.cached(key="{url}", unless=_failed)(self._fetch)

    async def _fetch(self, url: str) -> Fetched:
        assert self._client is not None  # noqa: S101 - sender() sets it before any call
        self.fetches += 1
        return await fetch(self._client, url)

    def sender(self, client: AsyncHttpClient) -> Send:
        """Sends through ``client``, answering from the cache when the URL already succeeded."""
        self._client = client

        async def send(url: str) -> str:
            return (await self._get(url)).kind

        return send


def baseline_sender(client: httpx.AsyncClient) -> Send:
    """Sends with plain httpx: no retries, no policies; any non-2xx is a failure."""

    async def send(url: str) -> str:
        try:
            response = await client.get(url)
        except httpx.HTTPError as error:
            return type(error).__name__
        return OK if response.is_success else str(response.status_code)

    return send


async def run_pass(
    planned: Sequence[Planned],
    base_urls: dict[str, str],
    send: Send,
    progress: Progress,
    *,
    concurrency: int,
) -> float:
    """Send every planned request, at most ``concurrency`` in flight; returns the pass's wall seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def one(request: Planned) -> None:
        async with gate:
            url = base_urls[request.domain] + request.path
            started = time.perf_counter()
            kind = await send(url)
            progress.add(Outcome(request.domain, kind, time.perf_counter() - started))

    started = time.perf_counter()
    await asyncio.gather(*(one(request) for request in planned))
    return time.perf_counter() - started
