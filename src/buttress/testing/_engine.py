"""The server side of an upstream: every domain's listener, faults, connections and counters.

Everything here runs on the server's event loop thread; the runners (thread or process) reach it only
through :class:`Engine`'s coroutines, so counters need no locks and the hot path takes none.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

from buttress.testing._connection import Connection
from buttress.testing._domain import Domain, Stats
from buttress.testing._fate import Fate, FaultSlot
from buttress.testing._fault import Fault
from buttress.testing._http import Request
from buttress.testing._routes import Answer, answer

__all__ = ["BACKLOG", "DomainState", "Engine", "bind_socket"]

BACKLOG = 1024


def bind_socket(port: int = 0) -> socket.socket:
    """A TCP socket bound to 127.0.0.1, shareable by port (SO_REUSEPORT) but not yet listening.

    The front object keeps one per domain to reserve its port; the server binds its listener beside it,
    so closing the listener (a domain going down) refuses connections while nobody else can take the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


class DomainState:
    """One domain on the server: the faults in force, its listener, its open connections and counters."""

    def __init__(self, seed: int, domain: Domain, port: int) -> None:
        self.name = domain.name
        self.port = port
        self._seed = seed
        self.slot = FaultSlot(domain.fault)
        self._routes: list[tuple[str, str, FaultSlot]] = []
        for prefix, fault in domain.routes:
            self.set_route(prefix, fault)
        self.server: asyncio.Server | None = None
        self.connections: set[Connection] = set()
        self.accepted = 0
        self.counts: dict[str, int] = {}
        self.outcomes: dict[str, int] = {}

    def set_route(self, prefix: str, fault: Fault) -> None:
        """Put ``fault`` in force for ``prefix`` and the paths below it; the longest prefix wins."""
        routes = [route for route in self._routes if route[0] != prefix]
        routes.append((prefix, prefix.rstrip("/") + "/", FaultSlot(fault)))
        routes.sort(key=lambda route: len(route[0]), reverse=True)
        self._routes = routes

    def slot_for(self, path: str) -> FaultSlot:
        for prefix, below, slot in self._routes:
            if path == prefix or path.startswith(below):
                return slot
        return self.slot

    def serve(self, request: Request) -> tuple[Fate, Answer | None, Fault]:
        """Count the request, decide its fate, and build the answer when there is one."""
        target = request.target
        path = target.partition("?")[0] if target.startswith("/") else (urlsplit(target).path or "/")
        counts = self.counts
        n = counts.get(path, 0)
        counts[path] = n + 1
        slot = self.slot_for(path)
        fate = slot.decide(self._seed, self.name, path, n)
        reply = (
            None
            if fate.action != "answer"
            else answer(self.name, request, path, n=n, fate=fate, fault=slot.fault)
        )
        outcome = fate.action if reply is None else str(reply.status)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        return fate, reply, slot.fault

    def opened(self, connection: Connection) -> None:
        self.connections.add(connection)
        self.accepted += 1

    def closed(self, connection: Connection) -> None:
        self.connections.discard(connection)

    async def listen(self) -> None:
        """Accept connections on the domain's port (a no-op when already listening)."""
        if self.server is None:
            sock = bind_socket(self.port)
            self.server = await asyncio.get_running_loop().create_server(
                lambda: Connection(self), sock=sock, backlog=BACKLOG
            )

    async def shut(self) -> None:
        """Refuse new connections and drop the open ones, as a crashed service would."""
        if self.server is not None:
            self.server.close()
            self.server = None
        tasks = [c.task for c in self.connections if c.task is not None]
        for connection in list(self.connections):
            connection.abort()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the aborted transports report connection_lost


class Engine:
    """All domains of one upstream, driven from the event loop thread."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.domains: dict[str, DomainState] = {}

    async def add(self, domain: Domain, port: int) -> None:
        state = DomainState(self.seed, domain, port)
        self.domains[domain.name] = state
        if not domain.fault.down:
            await state.listen()

    async def set_fault(self, name: str, fault: Fault, path: str | None) -> None:
        state = self.domains[name]
        if path is not None:
            state.set_route(path, fault)
            return
        state.slot = FaultSlot(fault)
        if fault.down:
            await state.shut()
        else:
            await state.listen()

    async def reset_counts(self) -> None:
        for state in self.domains.values():
            state.counts.clear()
            state.outcomes.clear()
            state.accepted = 0

    async def snapshot(self) -> Stats:
        domains = self.domains.values()
        return Stats(
            {s.name: dict(s.counts) for s in domains},
            {s.name: dict(s.outcomes) for s in domains},
            {s.name: s.accepted for s in domains},
        )

    async def close(self) -> Stats:
        """Stop every domain and return the final counters."""
        stats = await self.snapshot()
        for state in self.domains.values():
            await state.shut()
        return stats
