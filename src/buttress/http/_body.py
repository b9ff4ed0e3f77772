"""Response bodies that give the host's bulkhead slot back and record the attempt's duration when closed.

They also hold the request's deadline while the body is read (unless the caller streams on purpose):
a body that trickles in past the deadline raises :class:`~buttress.errors.DeadlineExceeded` at the next
chunk instead of keeping the caller for as long as each chunk beats the read timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from buttress.errors import DeadlineExceeded

if TYPE_CHECKING:
    from buttress.http._telemetry import HostTelemetry

__all__ = ["AsyncBody", "SyncBody"]


class _Body:
    __slots__ = ("_closed", "_cutoff", "_inner", "_now", "_release", "_start", "_telemetry")

    def __init__(
        self,
        inner: Any,
        *,
        release: Callable[[], None] | None,
        telemetry: HostTelemetry,
        start: float,
        now: Callable[[], float],
        cutoff: float,
    ) -> None:
        self._inner = inner
        self._release = release
        self._telemetry = telemetry
        self._start = start
        self._now = now
        self._cutoff = cutoff
        self._closed = False

    def _late(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"the response body from {self._telemetry.key} was still arriving at the request's deadline",
            context={"host": self._telemetry.key},
        )

    def _finish(self) -> None:
        self._closed = True
        release, self._release = self._release, None
        if release is not None:
            release()
        self._telemetry.observe_duration(self._now() - self._start)


class SyncBody(_Body, httpx.SyncByteStream):
    """The body of a response from a sync transport."""

    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        now, cutoff = self._now, self._cutoff
        for chunk in self._inner:
            if now() > cutoff:
                raise self._late()
            yield chunk

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._inner.close()
        finally:
            self._finish()


class AsyncBody(_Body, httpx.AsyncByteStream):
    """The body of a response from an async transport."""

    __slots__ = ()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        now, cutoff = self._now, self._cutoff
        async for chunk in self._inner:
            if now() > cutoff:
                raise self._late()
            yield chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        try:
            await self._inner.aclose()
        finally:
            self._finish()
