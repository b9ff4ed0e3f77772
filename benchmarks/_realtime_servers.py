"""The servers of the realtime benchmark, each run alone in a uvicorn child process.

``python -m benchmarks._realtime_servers KIND PORT`` with KIND one of:

- ``naive``: Starlette, a set of accepted WebSockets and ``for ws in clients: await ws.send_text(msg)``
  per message (shared/bench/wave2/ws_server.py, MODE=naive);
- ``socketio``: python-socketio's ``AsyncServer`` (ASGI), ``await sio.emit("bench.tick", data)`` to
  everyone in the default namespace;
- ``buttress``: FastAPI with ``realtime_router(public=["**"])`` and ``get_realtime().publish(...)``.

Every server answers ``POST /publish?n=N&p=PHASE&pad=BYTES`` by publishing N messages
``{"t": time.time(), "k": k, "p": PHASE, "pad": "x" * BYTES}`` one after the other (``t`` taken just
before each publish call: latency is publish-to-client), yielding to the loop between two; and
``GET /count`` with the connections it holds (never called while a phase is timed). The same uvicorn
settings for all (:data:`UVICORN`).

``BENCH_REALTIME_PROFILE=PATH`` profiles the server and writes pstats-format stats to PATH when uvicorn
stops (SIGTERM or SIGINT): with yappi when it is importable (every thread: the event bus hands events over
in threads of its own; ``PATH.threads`` gets CPU time per thread), else cProfile (the loop's thread only).
``BENCH_REALTIME_PROFILER=cprofile`` forces cProfile; ``BENCH_REALTIME_PROFILE_CLOCK=wall`` measures
wall time instead of CPU time. Either slows the server: read proportions, not times.
``BENCH_REALTIME_PROFILER=sample`` samples the loop thread's stack every millisecond instead (no
per-call overhead, so small functions are not inflated) and writes the hottest functions and stacks
as text to ``PATH.txt``.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from benchmarks._realtime_clients import raise_open_files

__all__ = ["UVICORN", "main"]

UVICORN: Final[dict[str, Any]] = {
    "host": "127.0.0.1",
    "ws": "websockets",
    "http": "h11",
    "loop": "auto",  # uvloop when installed
    "log_level": "warning",
    "access_log": False,
    "backlog": 4096,
    "timeout_graceful_shutdown": 3,
}
TOPIC: Final = "bench.tick"

Publish = Callable[[dict[str, Any]], Awaitable[None]]


def _message(k: int, phase: int, pad: str) -> dict[str, Any]:
    return {"t": time.time(), "k": k, "p": phase, "pad": pad}


def _publish_route(publish: Publish, count: Callable[[], int]) -> list[Route]:
    async def publish_endpoint(request: Request) -> PlainTextResponse:
        n = int(request.query_params.get("n", "1"))
        phase = int(request.query_params.get("p", "0"))
        pad = "x" * int(request.query_params.get("pad", "200"))
        for k in range(n):
            await publish(_message(k, phase, pad))
            await asyncio.sleep(0)
        return PlainTextResponse("published")  # nothing else in the timed window (buttress counts in O(n))

    async def count_endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(count()))

    return [
        Route("/publish", publish_endpoint, methods=["POST"]),
        Route("/count", count_endpoint),
    ]


def naive_app() -> ASGIApp:
    """The naive broadcast loop: every send awaited in turn, one stuck socket holds up the rest."""
    import json

    clients: set[WebSocket] = set()

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        clients.add(ws)
        try:
            while True:
                await ws.receive_text()
        except Exception:  # noqa: BLE001, S110 - any end of the socket ends its membership
            pass
        finally:
            clients.discard(ws)

    async def publish(data: dict[str, Any]) -> None:
        text = json.dumps(data)
        for ws in list(clients):
            try:
                await ws.send_text(text)
            except Exception:  # noqa: BLE001, S112 - a dead socket is skipped, as the anchor does
                continue

    routes: list[Route | WebSocketRoute] = [WebSocketRoute("/ws", endpoint)]
    routes += _publish_route(publish, lambda: len(clients))
    return Starlette(routes=routes)


def socketio_app() -> ASGIApp:
    """python-socketio's AsyncServer: ``emit`` to the whole default namespace, queues per engine.io socket."""
    import socketio  # type: ignore[import-untyped]

    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])
    connected: set[str] = set()

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any]) -> None:
        connected.add(sid)

    @sio.event  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, *args: Any) -> None:
        connected.discard(sid)

    async def publish(data: dict[str, Any]) -> None:
        await sio.emit(TOPIC, data)

    other = Starlette(routes=_publish_route(publish, lambda: len(connected)))
    app: ASGIApp = socketio.ASGIApp(sio, other_asgi_app=other)
    return app


def buttress_app() -> ASGIApp:
    """buttress.realtime on FastAPI: every topic public, publish through the process's Realtime."""
    from fastapi import FastAPI

    from buttress.realtime import get_realtime, realtime_router

    app = FastAPI()
    app.include_router(realtime_router(public=["**"]))

    async def publish(data: dict[str, Any]) -> None:
        get_realtime().publish(TOPIC, data)

    def count() -> int:
        return int(get_realtime().stats()["connections"])

    for route in _publish_route(publish, count):
        app.router.routes.append(route)
    return app


APPS: Final[dict[str, Callable[[], ASGIApp]]] = {
    "naive": naive_app,
    "socketio": socketio_app,
    "buttress": buttress_app,
}


class _Sampler:
    """Samples the loop thread's stack from a thread of its own; counts own and total hits per function.

    A deterministic profiler charges every Python call, so code made of many small calls (the event
    loop's callbacks, a metric's observe) looks costlier than it is. Sampling does not; the samples land
    where the loop thread lets the GIL go (every switch interval, set to 1 ms here, and around I/O).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.own: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.stacks: dict[str, int] = {}
        self.samples = 0
        self._target = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> None:
        sys.setswitchinterval(0.001)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            frame = sys._current_frames().get(self._target)
            if frame is None:
                continue
            self.samples += 1
            names: list[str] = []
            while frame is not None:
                code = frame.f_code
                names.append(f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_firstlineno}({code.co_name})")
                frame = frame.f_back
            self.own[names[0]] = self.own.get(names[0], 0) + 1
            for name in set(names):
                self.total[name] = self.total.get(name, 0) + 1
            key = " < ".join(names[:6])
            self.stacks[key] = self.stacks.get(key, 0) + 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        lines = [f"{self.samples} samples of the loop thread's stack", "", "own (leaf) share:"]
        lines += self._top(self.own, 40)
        lines += ["", "total (anywhere on the stack) share:"]
        lines += self._top(self.total, 60)
        lines += ["", "hottest stacks (leaf first, 6 frames):"]
        lines += self._top(self.stacks, 30)
        with open(f"{self.path}.txt", "w") as file:
            file.write("\n".join(lines) + "\n")

    def _top(self, counts: dict[str, int], n: int) -> list[str]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:n]
        return [f"{100 * hits / max(1, self.samples):6.2f} %  {name}" for name, hits in ranked]


class _Profile:
    """The profiler ``BENCH_REALTIME_PROFILE`` asks for: yappi (all threads) if importable, else cProfile."""

    def __init__(self, path: str) -> None:
        self.path = path
        wall = os.environ.get("BENCH_REALTIME_PROFILE_CLOCK", "cpu") == "wall"
        self._yappi: Any = None
        self._cprofile: cProfile.Profile | None = None
        self._sampler: _Sampler | None = None
        chosen = os.environ.get("BENCH_REALTIME_PROFILER", "yappi")
        if chosen == "sample":
            self._sampler = _Sampler(path)
            return
        if chosen == "yappi":
            try:
                import yappi  # type: ignore[import-not-found, unused-ignore]
            except ImportError:
                pass
            else:
                yappi.set_clock_type("wall" if wall else "cpu")
                self._yappi = yappi
        if self._yappi is None:
            self._cprofile = cProfile.Profile() if wall else cProfile.Profile(time.process_time)

    def start(self) -> None:
        if self._sampler is not None:
            self._sampler.start()
        elif self._yappi is not None:
            self._yappi.start(builtins=True)
        elif self._cprofile is not None:
            self._cprofile.enable()

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        elif self._yappi is not None:
            self._yappi.stop()
            self._yappi.get_func_stats().save(self.path, type="pstat")
            with open(f"{self.path}.threads", "w") as file:
                self._yappi.get_thread_stats().print_all(out=file)
        elif self._cprofile is not None:
            self._cprofile.disable()
            self._cprofile.dump_stats(self.path)


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    raise_open_files(20_000)
    app = APPS[kind]()
    path = os.environ.get("BENCH_REALTIME_PROFILE")
    profile = _Profile(path) if path else None
    if profile is not None:
        # uvicorn stops gracefully on SIGTERM, then raises it again under the handler that was there
        # before: an empty one lets run() return, so the profile is written.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        profile.start()
    try:
        uvicorn.run(app, port=port, **UVICORN)
    finally:
        if profile is not None:
            profile.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
