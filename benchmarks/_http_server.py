"""The server side of the HTTP benchmark: the upstream's CPU per request and the floor of a round trip.

An HTTP client's overhead only reads right next to what the rest of a request costs: the loopback server
(here :class:`buttress.testing.Upstream` in a child process) and the kernel. :func:`server_cpu_ns` reads
the child's CPU time around a burst of requests; :class:`SocketGet` sends the same GET over a bare
kept-alive socket, so its round trip is what no client can beat.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Callable
from typing import Final

import psutil

from buttress.testing import Upstream

__all__ = ["SocketGet", "server_cpu_ns", "server_process"]

PROCESS_NAME: Final = "buttress-upstream"
"""The name :class:`buttress.testing.Upstream` gives its child process in ``mode="process"``."""


def server_process() -> psutil.Process:
    """The upstream's child process (exactly one must run), to read its CPU time."""
    children = [child for child in multiprocessing.active_children() if child.name == PROCESS_NAME]
    if len(children) != 1 or children[0].pid is None:
        raise RuntimeError(f"expected one running {PROCESS_NAME!r} child process, found {len(children)}")
    return psutil.Process(children[0].pid)


def server_cpu_ns(upstream: Upstream, send: Callable[[], object], *, seconds: float = 1.0) -> float:
    """The server's CPU time (user + system) per request while ``send`` runs in a loop for ``seconds``.

    CPU clocks tick every 10 ms, so a burst of a second or so keeps the error to about 1%.
    """
    process = server_process()
    calls = upstream.calls()
    before = process.cpu_times()
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        send()
    after = process.cpu_times()
    served = upstream.calls() - calls
    used = (after.user - before.user) + (after.system - before.system)
    return used / served * 1e9


class SocketGet:
    """``GET path`` over one kept-alive socket with nothing in between: returns the response body.

    Only for answers with a ``Content-Length`` (the upstream always sends one) and one request in flight.
    """

    def __init__(self, host: str, port: int, path: str = "/") -> None:
        self._sock = socket.create_connection((host, port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("ascii")

    def __call__(self) -> bytes:
        sock = self._sock
        sock.sendall(self._request)
        data = sock.recv(65536)
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._more()
        head = data[:end].decode("latin-1").lower()
        if not head.startswith("http/1.1 200 "):
            raise RuntimeError(f"the upstream answered {head.splitlines()[0]!r}")
        length = int(head.split("\r\ncontent-length:", 1)[1].split("\r\n", 1)[0])
        total = end + 4 + length
        while len(data) < total:
            data += self._more()
        return data[end + 4 : total]

    def _more(self) -> bytes:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise RuntimeError("the upstream closed the connection")
        return chunk

    def close(self) -> None:
        self._sock.close()
