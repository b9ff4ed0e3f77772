"""The client side of the realtime benchmark: one process holding many WebSocket connections.

``python -m benchmarks._realtime_clients --targets naive:PORT,socketio:PORT,buttress:PORT --count 500``
opens ``count`` connections to each target, says ``{"event": "ready", ...}`` on stdout, then obeys JSON
commands read line by line from stdin (see :func:`_serve`): ``phase`` (count the messages of one phase
until every connection to a target has ``expect`` of them, then report), ``stuck`` (add connections that
never read) and ``quit``.

Why not ``websockets``' own client: on this 2-core machine the clients share the CPU with the server they
measure, and the cheaper they are the more the server's own cost shows (the wave-2 anchors were
client-bound). Against the naive server, from one process, ``websockets``' client (one ``recv()`` per
message, 500 connections) took about 40 µs of CPU per message here, these about 22 µs (1,000
connections). Each connection here is a bare :class:`asyncio.Protocol` that parses server frames (never
masked, never compressed: no extension is offered) straight out of the bytes it is handed, one
``time.time()`` per read, one ``json.loads`` per message, on uvloop when it is installed.
Every server is read by the same parser; only the framing of the application's messages differs:

- naive: one JSON payload per frame;
- python-socketio: engine.io v4 text packets, ``42["bench.tick",{...}]`` (answers ``2`` pings with ``3``
  and joins the default namespace with ``40``), the parse python-socketio's own client does;
- buttress: ``{"type": "event", ..., "data": {...}}`` messages, several per frame joined by ``"\\n"``
  (answers ``ping`` messages with ``pong``).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import json
import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

__all__ = ["KINDS", "main"]

KINDS: Final = ("naive", "socketio", "buttress")
PATHS: Final = {
    "naive": "/ws",
    "socketio": "/socket.io/?EIO=4&transport=websocket",
    "buttress": "/ws?topics=bench.tick",
}
SUBPROTOCOL: Final = {"buttress": "buttress.v1"}
CONNECT_CONCURRENCY: Final = 50
CONNECT_ATTEMPTS: Final = 5
HANDSHAKE_TIMEOUT_S: Final = 10.0
STUCK_RCVBUF: Final = 4096  # a small receive buffer: the stuck client's socket fills after a few frames

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (clients must mask; the key is random as RFC 6455 asks)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return head + key + masked


def _handshake(kind: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    lines = [
        f"GET {PATHS[kind]} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if kind in SUBPROTOCOL:
        lines.append(f"Sec-WebSocket-Protocol: {SUBPROTOCOL[kind]}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@dataclass
class Phase:
    """What the connections to one target count now: messages of ``number`` until each has ``expect``."""

    number: int = -1
    expect: int = 0
    connections: int = 0
    complete: int = 0
    received: int = 0
    frames: int = 0  # text frames read while the phase ran (a server may batch messages)
    first: float = 0.0
    last: float = 0.0
    latencies: array.array[float] = field(default_factory=lambda: array.array("d"))
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Target:
    """One server: its connections and the phase they are counting."""

    kind: str
    port: int
    feeds: list[Feed] = field(default_factory=list)
    phase: Phase = field(default_factory=Phase)
    gaps: int = 0
    errors: list[str] = field(default_factory=list)
    closed: int = 0


class Feed(asyncio.Protocol):
    """One WebSocket connection: the upgrade, then server frames parsed in place as bytes arrive."""

    def __init__(self, target: Target, *, stuck: bool = False) -> None:
        self.target = target
        self.stuck = stuck
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.count = 0
        self._upgraded = False
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._on_text: Callable[[str, float], None] = {
            "naive": self._naive,
            "socketio": self._socketio,
            "buttress": self._buttress,
        }[target.kind]

    # -- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.write(_handshake(self.target.kind, self.target.port))

    def connection_lost(self, exc: Exception | None) -> None:
        self.target.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            if not status.startswith(b"HTTP/1.1 101"):
                self._fail(f"upgrade refused: {status!r}")
                return
            del buffer[: end + 4]
            self._upgraded = True
            if self.target.kind == "naive":
                self._set_ready()
            if self.stuck:
                if self.target.kind == "socketio":
                    self._send(b"40")
                self._set_ready()
                assert self.transport is not None
                self.transport.pause_reading()
                return
        self._frames(time.time())

    # -- frames -----------------------------------------------------------------------------------------

    def _frames(self, now: float) -> None:
        buffer = self._buffer
        size = len(buffer)
        at = 0
        while size - at >= 2:
            b0, b1 = buffer[at], buffer[at + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - at < 4:
                    break
                length = int.from_bytes(buffer[at + 2 : at + 4], "big")
                head = 4
            elif length == 127:
                if size - at < 10:
                    break
                length = int.from_bytes(buffer[at + 2 : at + 10], "big")
                head = 10
            if b1 & 0x80:
                self._fail("the server masked a frame")
                return
            end = at + head + length
            if end > size:
                break
            payload = bytes(buffer[at + head : end])
            at = end
            self._frame(b0 & 0x80, b0 & 0x0F, payload, now)
        if at:
            del buffer[:at]

    def _frame(self, fin: int, opcode: int, payload: bytes, now: float) -> None:
        if opcode in (OP_TEXT, OP_CONT):
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join([*self._fragments, payload])
                self._fragments.clear()
            self.target.phase.frames += 1
            self._on_text(payload.decode("utf-8"), now)
        elif opcode == OP_PING:
            self._write(_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.target.errors.append(f"closed by the server: {code} {payload[2:].decode(errors='replace')}")
            self._write(_frame(OP_CLOSE, payload[:2]))
            if self.transport is not None:
                self.transport.close()

    # -- the applications' framing ----------------------------------------------------------------------

    def _naive(self, text: str, now: float) -> None:
        self._deliver(json.loads(text), now)

    def _socketio(self, text: str, now: float) -> None:
        if text.startswith("42"):
            self._deliver(json.loads(text[2:])[1], now)
        elif text == "2":
            self._send(b"3")
        elif text.startswith("0"):
            self._send(b"40")
        elif text.startswith("40"):
            self._set_ready()
        elif text.startswith(("44", "41")):
            self.target.errors.append(f"socket.io: {text[:200]}")

    def _buttress(self, text: str, now: float) -> None:
        for line in text.split("\n"):
            message = json.loads(line)
            kind = message.get("type")
            if kind == "event":
                self._deliver(message["data"], now)
            elif kind == "ping":
                self._send(b'{"type":"pong"}')
            elif kind == "subscribed":
                self._set_ready()
            elif kind == "gap":
                self.target.gaps += 1
            elif kind == "error":
                self.target.errors.append(f"buttress: {line[:200]}")

    def _deliver(self, data: dict[str, Any], now: float) -> None:
        phase = self.target.phase
        if data["p"] != phase.number:
            return
        phase.received += 1
        phase.latencies.append(now - data["t"])
        if not phase.first:
            phase.first = now
        self.count += 1
        if self.count == phase.expect:
            phase.complete += 1
            phase.last = now
            if phase.complete == phase.connections:
                phase.done.set()

    # -- helpers ----------------------------------------------------------------------------------------

    def _send(self, text: bytes) -> None:
        self._write(_frame(OP_TEXT, text))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _set_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def _fail(self, why: str) -> None:
        self.target.errors.append(why)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()


async def _open(target: Target, *, stuck: bool = False) -> Feed:
    """One connection, ready (upgraded, and subscribed where the server says so); a few attempts."""
    loop = asyncio.get_running_loop()
    for attempt in range(CONNECT_ATTEMPTS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)  # noqa: FBT003 - the socket API's own flag
        if stuck:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STUCK_RCVBUF)
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", target.port))
            _, feed = await loop.create_connection(lambda: Feed(target, stuck=stuck), sock=sock)
            await asyncio.wait_for(asyncio.shield(feed.ready), HANDSHAKE_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            sock.close()
            if attempt == CONNECT_ATTEMPTS - 1:
                raise
            target.errors.append(f"connect attempt {attempt + 1}: {exc!r}")
            await asyncio.sleep(0.2 * (attempt + 1))
        else:
            return feed
    raise AssertionError("unreachable")


async def _open_many(target: Target, count: int, *, stuck: bool = False) -> int:
    """``count`` connections to ``target``, a few handshakes at a time; how many failed."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with gate:
            try:
                feed = await _open(target, stuck=stuck)
            except (OSError, TimeoutError) as exc:
                failed += 1
                target.errors.append(f"could not connect: {exc!r}")
                return
            if not stuck:
                target.feeds.append(feed)

    await asyncio.gather(*(one() for _ in range(count)))
    return failed


async def _phase(target: Target, command: dict[str, Any]) -> dict[str, Any]:
    """Count phase ``number``'s messages until each connection has ``expect`` (or the timeout)."""
    phase = Phase(number=int(command["phase"]), expect=int(command["expect"]), connections=len(target.feeds))
    for feed in target.feeds:
        feed.count = 0
    target.phase = phase
    cpu = time.process_time()
    print(json.dumps({"event": "armed", "phase": phase.number}), flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(phase.done.wait(), float(command["timeout"]))
    path = command.get("latencies")
    if path:
        Path(path).write_bytes(phase.latencies.tobytes())  # noqa: ASYNC240 - once per phase, after it
    result = {
        "event": "done",
        "phase": phase.number,
        "connections": phase.connections,
        "complete": phase.complete,
        "received": phase.received,
        "frames": phase.frames,
        "first": phase.first,
        "last": phase.last,
        "cpu_s": time.process_time() - cpu,
        "gaps": target.gaps,
        "closed": target.closed,
        "errors": target.errors[-5:],
    }
    target.phase = Phase()
    return result


async def _serve(targets: dict[str, Target]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        name = command["cmd"]
        if name == "quit":
            break
        target = targets[command["target"]]
        if name == "phase":
            print(json.dumps(await _phase(target, command)), flush=True)
        elif name == "stuck":
            failed = await _open_many(target, int(command["count"]), stuck=True)
            print(json.dumps({"event": "stuck", "failed": failed}), flush=True)
    for target in targets.values():
        for feed in target.feeds:
            if feed.transport is not None:
                feed.transport.close()


async def _main(args: argparse.Namespace) -> None:
    targets: dict[str, Target] = {}
    for spec in args.targets.split(","):
        kind, port = spec.split(":")
        targets[kind] = Target(kind, int(port))
    report: dict[str, Any] = {"event": "ready", "pid": os.getpid()}
    for target in targets.values():
        started = time.perf_counter()
        failed = await _open_many(target, args.count)
        report[target.kind] = {
            "connected": len(target.feeds),
            "failed": failed,
            "seconds": round(time.perf_counter() - started, 2),
            "errors": target.errors[-3:],
        }
    print(json.dumps(report), flush=True)
    await _serve(targets)


def raise_open_files(wanted: int) -> None:
    """Lift the soft limit on open files towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--targets", required=True, help="kind:port,... (kinds: naive, socketio, buttress)")
    parser.add_argument("--count", type=int, required=True, help="connections per target")
    args = parser.parse_args(argv)
    raise_open_files(args.count * len(args.targets.split(",")) + 256)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(args))
    else:
        uvloop.run(_main(args))


if __name__ == "__main__":
    main(sys.argv[1:])
