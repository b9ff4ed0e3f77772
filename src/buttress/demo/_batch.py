"""One pass of the batch: every planned GET through one sender, at most ``concurrency`` at a time.

A sender turns a URL into an outcome kind (``"ok"``, a status such as ``"503"``, or an error's name), so
the buttress client and the plain httpx baseline run through the same loop and are measured the same way:
``time.perf_counter`` around the whole call, retries and waits included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

from buttress.demo._scenario import Planned
from buttress.errors import ButtressError, UpstreamError, UpstreamStatusError
from buttress.http import AsyncHttpClient

__all__ = ["OK", "Outcome", "Progress", "Send", "baseline_sender", "buttress_sender", "run_pass"]

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


def buttress_sender(client: AsyncHttpClient) -> Send:
    """Sends through the buttress client; a status error counts by its status, others by their kind."""

    async def send(url: str) -> str:
        try:
            await client.get(url)
        except UpstreamStatusError as error:
            return str(error.status_code)
        except UpstreamError as error:
            # UpstreamError wraps httpx's failure; its name (ConnectError, ReadTimeout) says more.
            return str(error.context.get("error", type(error).__name__))
        except ButtressError as error:  # refused before the wire: CircuitOpen, RateLimited, ...
            return type(error).__name__
        return OK

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
