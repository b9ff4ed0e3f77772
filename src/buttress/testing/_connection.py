"""One client connection to a domain: parse requests, ask the domain for their fate, send the answer.

The happy path answers inside ``data_received`` with one write; only delays, slow bodies, large bodies and
hangs start a task. Writes respect the transport's flow control, so a 256 MiB body streams in 64 KiB
pieces at the client's pace.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import TYPE_CHECKING, Final, cast

from buttress.testing._fate import Fate
from buttress.testing._fault import Fault
from buttress.testing._http import BadRequest, Request, RequestParser, response_head
from buttress.testing._routes import Answer, pattern_pieces

if TYPE_CHECKING:
    from buttress.testing._engine import DomainState

__all__ = ["Connection"]

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_BAD_REQUEST: Final = (
    response_head(400, [("content-type", "text/plain"), ("content-length", "11"), ("connection", "close")])
    + b"bad request"
)
_LINGER_ZERO: Final = struct.pack("ii", 1, 0)


class Connection(asyncio.Protocol):
    """The server side of one TCP connection (HTTP/1.1, keep-alive, pipelined requests in order)."""

    def __init__(self, domain: DomainState) -> None:
        self._domain = domain
        self._parser = RequestParser()
        self._transport = cast("asyncio.Transport", None)  # set by connection_made, before any use
        self._task: asyncio.Task[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)
        self._domain.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._domain.closed(self)
        self._lost.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        if self._task is None:
            self._process()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The response in progress when it needs waiting (a delay, a slow body, a hang), else None."""
        return self._task

    def abort(self) -> None:
        """Drop the connection at once (the domain went down or the server stops)."""
        self._transport.abort()
        if self._task is not None:
            self._task.cancel()

    def _process(self) -> None:
        transport = self._transport
        while self._task is None and not transport.is_closing():
            try:
                request = self._parser.next()
            except BadRequest:
                transport.write(_BAD_REQUEST)
                transport.close()
                return
            if self._parser.continue_wanted:
                self._parser.continue_wanted = False
                transport.write(_CONTINUE)
            if request is None:
                return
            fate, reply, fault = self._domain.serve(request)
            if reply is not None and not fate.delay and not fault.slow_body and reply.body is not None:
                head = response_head(reply.status, _closing(reply.headers, request))
                transport.write(head if request.method == "HEAD" else head + reply.body)
                if not request.keep_alive:
                    transport.close()
            else:
                respond = (
                    self._answer(request, fate, reply, fault) if reply is not None else self._refuse(fate)
                )
                self._task = asyncio.get_running_loop().create_task(respond)

    async def _refuse(self, fate: Fate) -> None:
        """Hang until the client goes away, or reset the connection (RST, not FIN)."""
        if fate.action == "hang":
            await self._lost.wait()
            return
        self._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        self._transport.abort()

    async def _answer(self, request: Request, fate: Fate, reply: Answer, fault: Fault) -> None:
        transport = self._transport
        if fate.delay:
            await asyncio.sleep(fate.delay)
        transport.write(response_head(reply.status, _closing(reply.headers, request)))
        if request.method != "HEAD":
            await self._send_body(reply, fault)
        if not request.keep_alive:
            transport.close()
            return
        self._task = None
        self._process()

    async def _send_body(self, reply: Answer, fault: Fault) -> None:
        transport = self._transport
        slow_body = fault.slow_body
        chunks = fault.body_chunks if slow_body else 1
        step = -(-reply.length // chunks) if reply.length else 0
        for start in range(0, reply.length, step or 1):
            if start and slow_body:
                await asyncio.sleep(slow_body)
            stop = min(start + step, reply.length)
            pieces = [reply.body[start:stop]] if reply.body is not None else pattern_pieces(start, stop)
            for piece in pieces:
                transport.write(piece)
                await self._writable.wait()
                if transport.is_closing():
                    return


def _closing(headers: list[tuple[str, str]], request: Request) -> list[tuple[str, str]]:
    return headers if request.keep_alive else [*headers, ("connection", "close")]
