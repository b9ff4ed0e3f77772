"""Realtime fan-out: buttress.realtime against a naive Starlette loop and python-socketio, one harness.

Three servers (:mod:`benchmarks._realtime_servers`), each a uvicorn child process on its own loopback
port with the same settings, hold the same clients: 2 client processes (:mod:`benchmarks._realtime_clients`)
open half of the connections each to every server, and the servers take turns (rotating order, so load
from other processes on this shared machine spreads over all three). Per server:

1. throughput: ``POST /publish?n=M`` publishes M broadcasts back to back; deliveries/s =
   clients x M / (time the last client got its M-th message - time the request was sent); rounds, median;
2. latency: 10 broadcasts a second for a few seconds (one ``POST /publish?n=1`` per tick, on a schedule),
   publish-to-client latency from the timestamp the server puts in each payload (one machine, one clock),
   p50/p99/max over every delivery;
3. slow consumer (after the others, on fresh connections): 20 healthy clients and one that never reads
   (a 4 KiB receive buffer), M messages of 16 KB; the share the healthy clients got within the timeout.

Server and client CPU time per delivery are read around each throughput run (psutil; the clients report
their own): a server's cost that does not depend on how fast the clients read.

``python -m benchmarks realtime`` (or ``python -m benchmarks.bench_realtime [--quick] [...]``, see
``--help``); ``BENCH_REALTIME_QUICK=1`` makes the first one quick too. ``--profile PATH`` profiles the
buttress server (yappi when importable, else cProfile: :mod:`benchmarks._realtime_servers`) and prints
where its time went; e.g. ``uv pip install --target /tmp/yappi yappi`` and ``PYTHONPATH=/tmp/yappi``.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import http.client
import json
import os
import pstats
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any, Final

import psutil

from benchmarks._harness import Table, rotations
from benchmarks._realtime_clients import KINDS, raise_open_files

__all__ = ["Options", "run"]

ROOT: Final = Path(__file__).resolve().parent.parent
CLIENT_PROCESSES: Final = 2
BUDGET_RATIO: Final = 1.5  # buttress deliveries/s >= 1.5x naive and >= 1.5x python-socketio
BUDGET_P99_MS: Final = 100.0
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 15.0
LABELS: Final = {"naive": "naive Starlette loop", "socketio": "python-socketio", "buttress": "buttress"}


@dataclass(frozen=True)
class Options:
    """One run's sizes; :meth:`quick` is the lead's iteration loop (200 clients, shorter phases)."""

    clients: int = 1_000
    messages: int = 100
    rounds: int = 5
    rate: float = 10.0
    latency_seconds: float = 10.0
    slow_healthy: int = 20
    slow_messages: int = 1_000
    slow_pad: int = 16_000
    slow_timeout: float = 20.0
    phase_timeout: float = 120.0
    kinds: tuple[str, ...] = KINDS
    slow: bool = True
    profile: str | None = None
    profiled: str = "buttress"

    @classmethod
    def quick(cls, **changes: Any) -> Options:
        sizes: dict[str, Any] = {
            "clients": 200,
            "messages": 50,
            "rounds": 3,
            "latency_seconds": 4.0,
            "slow_messages": 500,
            "slow_timeout": 10.0,
            "phase_timeout": 60.0,
        }
        return cls(**{**sizes, **changes})


# -- processes -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("BENCH_REALTIME_PROFILE", None)
    return env


def _stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the child's process group, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT_S)


class Server:
    """One server in a uvicorn child process, in a session of its own (stopped with all it started)."""

    def __init__(self, kind: str, *, profile: str | None = None) -> None:
        self.kind = kind
        self.port = _free_port()
        env = _env()
        env["BUTTRESS_REALTIME__LOG"] = "memory"  # one process: the in-memory ring, whatever the shell says
        if profile:
            env["BENCH_REALTIME_PROFILE"] = profile
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter on our own module
            [sys.executable, "-m", "benchmarks._realtime_servers", kind, str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._psutil = psutil.Process(self.process.pid)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.kind} server exited: {self.output()}")
            with contextlib.suppress(OSError):
                self.count()
                return
            time.sleep(0.1)
        raise RuntimeError(f"the {self.kind} server did not start within {START_TIMEOUT_S:.0f} s")

    def request(self, method: str, path: str, timeout: float = 300.0) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read().decode()
            if response.status != 200:
                raise RuntimeError(f"{method} {path} on {self.kind}: {response.status} {body[:200]}")
            return body
        finally:
            connection.close()

    def count(self) -> int:
        return int(self.request("GET", "/count", timeout=5.0))

    def cpu(self) -> float:
        times = self._psutil.cpu_times()
        return float(times.user + times.system)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        _stop(self.process)
        self.log.close()


class Publisher:
    """``POST /publish`` over one kept-alive connection (what the publishing side of a test would do)."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300.0)

    def publish(self, n: int, phase: int, pad: int = 200) -> None:
        self._connection.request("POST", f"/publish?n={n}&p={phase}&pad={pad}")
        response = self._connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"publish: {response.status} {body[:200]!r}")

    def close(self) -> None:
        self._connection.close()


class Clients:
    """One client process, driven by JSON lines over its stdin and stdout."""

    def __init__(self, targets: dict[str, int], count: int) -> None:
        spec = ",".join(f"{kind}:{port}" for kind, port in targets.items())
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter on our own module
            [sys.executable, "-m", "benchmarks._realtime_clients", "--targets", spec, "--count", str(count)],
            cwd=ROOT,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {event!r} from the client process within {timeout:.0f} s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"the client process exited ({self.process.wait()}) before {event!r}")
            message: dict[str, Any] = json.loads(line)
            if message.get("event") == event:
                return message

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send({"cmd": "quit"})
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _stop(self.process)


# -- one phase -----------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    """What every client process saw of one phase on one server."""

    expected: int
    received: int
    seconds: float  # publish request sent -> last client's last message (or the timeout)
    complete: bool
    server_cpu_s: float
    client_cpu_s: float
    latencies: array.array[float]
    gaps: int = 0
    frames: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


class Run:
    """The servers, the clients holding connections to all of them, and a phase counter."""

    def __init__(self, options: Options, folder: Path) -> None:
        self.options = options
        self.folder = folder
        self.servers: dict[str, Server] = {}
        self.clients: list[Clients] = []
        self.phase = 0
        self.notes: list[str] = []

    def start(self) -> None:
        for kind in self.options.kinds:
            profile = self.options.profile if kind == self.options.profiled else None
            self.servers[kind] = Server(kind, profile=profile)
        for server in self.servers.values():
            server.wait_ready()
        ports = {kind: server.port for kind, server in self.servers.items()}
        share = self.options.clients // CLIENT_PROCESSES
        self.clients = [
            Clients(ports, share + (1 if i < self.options.clients % CLIENT_PROCESSES else 0))
            for i in range(CLIENT_PROCESSES)
        ]
        for clients in self.clients:
            ready = clients.expect("ready", START_TIMEOUT_S * 5)
            for kind in self.servers:
                if ready[kind]["failed"]:
                    raise RuntimeError(f"{ready[kind]['failed']} connections to {kind} failed: {ready[kind]}")
        time.sleep(1.0)
        for kind, server in self.servers.items():
            held = server.count()
            if held not in (-1, self.options.clients):
                raise RuntimeError(f"the {kind} server holds {held} connections, not {self.options.clients}")

    def throughput(self, kind: str, messages: int) -> PhaseResult:
        server = self.servers[kind]
        publisher = Publisher(server.port)
        try:
            return self._phase(kind, messages, lambda phase: publisher.publish(messages, phase))
        finally:
            publisher.close()

    def latency(self, kind: str) -> PhaseResult:
        server = self.servers[kind]
        count = round(self.options.rate * self.options.latency_seconds)
        interval = 1.0 / self.options.rate
        publisher = Publisher(server.port)

        def publish(phase: int) -> None:
            start = time.monotonic()
            for i in range(count):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                publisher.publish(1, phase)

        try:
            return self._phase(kind, count, publish)
        finally:
            publisher.close()

    def _phase(self, kind: str, expect: int, publish: Any) -> PhaseResult:
        self.phase += 1
        phase = self.phase
        paths = [self.folder / f"latencies-{phase}-{i}.bin" for i in range(len(self.clients))]
        timeout = self.options.phase_timeout
        for clients, path in zip(self.clients, paths, strict=True):
            clients.send(
                {
                    "cmd": "phase",
                    "target": kind,
                    "phase": phase,
                    "expect": expect,
                    "timeout": timeout,
                    "latencies": str(path),
                }
            )
        for clients in self.clients:
            clients.expect("armed", 30.0)
        server = self.servers[kind]
        cpu = server.cpu()
        started = time.time()
        publish(phase)
        reports = [clients.expect("done", timeout + 30.0) for clients in self.clients]
        server_cpu = server.cpu() - cpu
        latencies: array.array[float] = array.array("d")
        for path in paths:
            with path.open("rb") as file:
                latencies.frombytes(file.read())
            path.unlink()
        complete = all(report["complete"] == report["connections"] for report in reports)
        last = max(report["last"] for report in reports)
        seconds = (last - started) if complete else timeout
        return PhaseResult(
            expected=expect * sum(report["connections"] for report in reports),
            received=sum(report["received"] for report in reports),
            frames=sum(report.get("frames", 0) for report in reports),
            seconds=seconds,
            complete=complete,
            server_cpu_s=server_cpu,
            client_cpu_s=sum(report["cpu_s"] for report in reports),
            latencies=latencies,
            gaps=sum(report["gaps"] for report in reports),
            errors=[error for report in reports for error in report["errors"]],
        )

    def stop_clients(self) -> None:
        for clients in self.clients:
            clients.stop()
        self.clients = []

    def stop(self) -> None:
        self.stop_clients()
        for server in self.servers.values():
            server.stop()


def _slow_consumer(run: Run, kind: str) -> PhaseResult:
    """20 healthy clients and one that never reads, on ``kind`` alone (the main clients are gone)."""
    options = run.options
    server = run.servers[kind]
    clients = Clients({kind: server.port}, options.slow_healthy)
    try:
        clients.expect("ready", START_TIMEOUT_S)
        clients.send({"cmd": "stuck", "target": kind, "count": 1})
        stuck = clients.expect("stuck", START_TIMEOUT_S)
        if stuck["failed"]:
            raise RuntimeError(f"the stuck client could not connect to {kind}")
        run.phase += 1
        phase = run.phase
        path = run.folder / f"slow-{phase}.bin"
        clients.send(
            {
                "cmd": "phase",
                "target": kind,
                "phase": phase,
                "expect": options.slow_messages,
                "timeout": options.slow_timeout,
                "latencies": str(path),
            }
        )
        clients.expect("armed", 30.0)
        cpu = server.cpu()
        started = time.time()
        publisher = Publisher(server.port)
        # The naive loop never returns while one socket is stuck: the request runs in a daemon thread.
        threading.Thread(
            target=_quietly,
            args=(publisher.publish, options.slow_messages, phase, options.slow_pad),
            daemon=True,
        ).start()
        report = clients.expect("done", options.slow_timeout + 30.0)
        latencies: array.array[float] = array.array("d")
        with path.open("rb") as file:
            latencies.frombytes(file.read())
        complete = report["complete"] == report["connections"]
        return PhaseResult(
            expected=options.slow_messages * report["connections"],
            received=report["received"],
            frames=report.get("frames", 0),
            seconds=(report["last"] - started) if complete else options.slow_timeout,
            complete=complete,
            server_cpu_s=server.cpu() - cpu,
            client_cpu_s=report["cpu_s"],
            latencies=latencies,
            gaps=report["gaps"],
            errors=report["errors"],
        )
    finally:
        clients.stop()


def _quietly(fn: Any, *args: Any) -> None:
    with contextlib.suppress(OSError, RuntimeError, http.client.HTTPException):
        fn(*args)


# -- the table -----------------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


@dataclass
class Measured:
    throughput: list[PhaseResult] = field(default_factory=list)
    latency: list[PhaseResult] = field(default_factory=list)
    slow: PhaseResult | None = None

    def rate(self) -> float | None:
        rates = [result.rate for result in self.throughput]
        return statistics.median(rates) if rates else None

    def per_delivery_us(self, attribute: str) -> float | None:
        values = [getattr(r, attribute) / r.received * 1e6 for r in self.throughput if r.received]
        return statistics.median(values) if values else None

    def latencies_ms(self) -> list[float]:
        return sorted(x * 1e3 for result in self.latency for x in result.latencies)


COLUMNS: Final = (
    "server",
    "deliveries/s",
    "server CPU µs/delivery",
    "client CPU µs/delivery",
    "latency p50 ms",
    "latency p99 ms",
    "latency max ms",
    "slow consumer: healthy clients served",
)


@dataclass
class RealtimeTable(Table):
    """One line per server; rates are higher-is-better, latencies lower-is-better."""

    lines: list[tuple[str, ...]] = field(default_factory=list)

    def to_markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        out += ["| " + " | ".join(line) + " |" for line in self.lines]
        out += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(out) + "\n"


def _num(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


def _slow_cell(result: PhaseResult | None) -> str:
    if result is None:
        return "n/a"
    share = 100 * result.received / result.expected if result.expected else 0.0
    text = f"{share:.1f} % in {result.seconds:.1f} s"
    return text + (f", {result.gaps} gap markers" if result.gaps else "")


def _line(kind: str, measured: Measured) -> tuple[str, ...]:
    lats = measured.latencies_ms()
    incomplete = [r for r in measured.throughput + measured.latency if not r.complete]
    rate = _num(measured.rate()) + (" (incomplete)" if incomplete else "")
    return (
        f"{LABELS[kind]} {_version(kind)}".strip(),
        rate,
        _num(measured.per_delivery_us("server_cpu_s"), ".1f"),
        _num(measured.per_delivery_us("client_cpu_s"), ".1f"),
        _num(_percentile(lats, 0.5) if lats else None, ".1f"),
        _num(_percentile(lats, 0.99) if lats else None, ".1f"),
        _num(lats[-1] if lats else None, ".1f"),
        _slow_cell(measured.slow),
    )


def _version(kind: str) -> str:
    package = {"naive": "starlette", "socketio": "python-socketio", "buttress": "buttress"}[kind]
    try:
        return version(package)
    except PackageNotFoundError:
        return ""


def _round(result: PhaseResult) -> str:
    """One throughput round: rate, server CPU per delivery, and messages per WebSocket frame."""
    cpu = result.server_cpu_s / result.received * 1e6 if result.received else float("nan")
    per_frame = result.received / result.frames if result.frames else float("nan")
    return f"{result.rate:,.0f}/s ({cpu:.0f} µs CPU, {per_frame:.1f} msg/frame)"


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _notes(options: Options, results: dict[str, Measured]) -> list[str]:
    notes: list[str] = []
    ours = results.get("buttress")
    budgets: list[str] = []
    if ours is not None and ours.rate():
        mine = ours.rate() or 0.0
        for kind in ("naive", "socketio"):
            theirs = results[kind].rate() if kind in results else None
            if theirs:
                ratio = mine / theirs
                verdict = _verdict(ratio >= BUDGET_RATIO)
                budgets.append(f"deliveries/s >= {BUDGET_RATIO:.1f}x {LABELS[kind]}: {ratio:.2f}x, {verdict}")
                cpu_ours = ours.per_delivery_us("server_cpu_s")
                cpu_theirs = results[kind].per_delivery_us("server_cpu_s")
                if cpu_ours and cpu_theirs:
                    notes.append(
                        f"buttress / {LABELS[kind]}: deliveries/s {ratio:.2f}x (higher is better), "
                        f"server CPU per delivery {cpu_ours / cpu_theirs:.2f}x (lower is better)"
                    )
        lats = ours.latencies_ms()
        if lats:
            p99 = _percentile(lats, 0.99)
            budgets.append(
                f"p99 <= {BUDGET_P99_MS:.0f} ms at {options.clients:,} clients: {p99:.1f} ms, "
                f"{_verdict(p99 <= BUDGET_P99_MS)}"
            )
    if budgets:
        notes.append("Budgets: " + "; ".join(budgets) + ".")
    if options.rounds > 1:
        for kind, measured in results.items():
            rates = ", ".join(_round(r) for r in measured.throughput)
            notes.append(f"{LABELS[kind]}, round by round: {rates}")
    for kind, measured in results.items():
        problems = [e for r in [*measured.throughput, *measured.latency] for e in r.errors]
        gaps = sum(r.gaps for r in [*measured.throughput, *measured.latency])
        if problems or gaps:
            notes.append(f"{LABELS[kind]}: {gaps} gap markers, errors: {'; '.join(problems[:3]) or 'none'}")
    notes += [
        (
            f"Throughput: {options.clients:,} WebSocket clients (2 client processes, half each) x "
            f"{options.messages} broadcasts of a ~230-byte JSON payload published back to back by one "
            "`POST /publish` (the server publishes them one after the other, yielding to its loop between "
            "two); deliveries/s = clients x messages / (last client's last message - request sent). "
            f"{options.rounds} rounds, the servers in rotating order; a cell is the median. CPU per "
            "delivery: the server process's user + system time over a throughput run (clients: both "
            "processes) / deliveries."
        ),
        (
            f"Latency: {options.rate:g} broadcasts/s for {options.latency_seconds:g} s to the same "
            f"{options.clients:,} clients, one `POST /publish?n=1` per tick; publish-to-client latency = "
            "client's receive time - the `time.time()` the server put in the payload just before its "
            "publish call (same machine clock), p50/p99/max over all deliveries."
        ),
        (
            f"Slow consumer: after the others, {options.slow_healthy} fresh healthy clients and 1 that never "
            f"reads (4 KiB receive buffer) on each server alone, {options.slow_messages:,} messages of "
            f"{options.slow_pad // 1000} KB; the share of the healthy clients' messages delivered within "
            f"{options.slow_timeout:g} s (and when the last arrived, if all did)."
        ),
        (
            "Servers: one uvicorn process each (h11, `--ws websockets`, uvloop, no access log), "
            "all three up at once and every client connected to all three. naive: Starlette, "
            "`for ws in clients: await ws.send_text(text)` per message (shared/bench/wave2/ws_server.py, "
            "MODE=naive). python-socketio: `AsyncServer(async_mode='asgi')`, "
            "`await sio.emit('bench.tick', data)` to the default namespace. buttress: FastAPI, "
            "`app.include_router(realtime_router(public=['**']))`, "
            "`get_realtime().publish('bench.tick', data)`, default settings (memory log)."
        ),
        (
            "Clients: bare asyncio protocols on uvloop (benchmarks/_realtime_clients.py) that parse the "
            "server's frames in place, one `json.loads` per message, for all three servers alike: on these "
            "2 shared cores the clients compete with the server they measure, and the `websockets` "
            "library's client (`recv()` per message) took about 40 µs of CPU per message here against about "
            "22 µs for these (naive server, one client process with 500 and 1,000 connections). "
            "socket.io frames are parsed as engine.io "
            "v4 text packets (`42[event, data]`, pings answered), buttress frames split on newlines."
        ),
    ]
    return notes


def _print_profile(path: str, kind: str) -> None:
    sampled = Path(f"{path}.txt")
    if sampled.exists():
        print(f"# {kind} server, sampled:\n{sampled.read_text()}", file=sys.stderr)
        return
    stats = pstats.Stats(path, stream=sys.stderr)
    stats.strip_dirs()
    threads = Path(f"{path}.threads")
    if threads.exists():
        print(f"# {kind} server threads:\n{threads.read_text()}", file=sys.stderr)
    print(f"# {kind} server profile ({path}), by own time:", file=sys.stderr)
    stats.sort_stats("tottime").print_stats(35)
    print("# by cumulative time:", file=sys.stderr)
    stats.sort_stats("cumulative").print_stats(45)


def bench(options: Options) -> RealtimeTable:
    raise_open_files(4_096)
    results = {kind: Measured() for kind in options.kinds}
    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as folder:
        run = Run(options, Path(folder))
        try:
            print(
                f"  starting {len(options.kinds)} servers and {options.clients} clients ...", file=sys.stderr
            )
            run.start()
            for kind in options.kinds:  # warm-up: imports, caches, first allocations
                run.throughput(kind, 5)
            for kind in rotations(list(options.kinds), options.rounds):
                result = run.throughput(kind, options.messages)
                print(
                    f"  {kind}: {_round(result)}, {result.received:,}/{result.expected:,} "
                    f"in {result.seconds:.2f} s, server CPU {result.server_cpu_s:.2f} s, clients "
                    f"{result.client_cpu_s:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
                results[kind].throughput.append(result)
            for kind in rotations(list(options.kinds), 1):
                result = run.latency(kind)
                lats = sorted(result.latencies)
                print(
                    f"  {kind}: latency p50 {_percentile(lats, 0.5) * 1e3:.1f} ms, "
                    f"p99 {_percentile(lats, 0.99) * 1e3:.1f} ms ({result.received:,}/{result.expected:,})",
                    file=sys.stderr,
                    flush=True,
                )
                results[kind].latency.append(result)
            if options.slow:
                run.stop_clients()
                for kind in options.kinds:
                    result = _slow_consumer(run, kind)
                    print(f"  {kind}: slow consumer {_slow_cell(result)}", file=sys.stderr, flush=True)
                    results[kind].slow = result
        finally:
            run.stop()
    if options.profile:
        _print_profile(options.profile, options.profiled)
    return RealtimeTable(
        title=(
            f"Realtime: WebSocket fan-out to {options.clients:,} clients "
            "(buttress.realtime vs a naive Starlette loop and python-socketio)"
        ),
        anchors=[LABELS[kind] for kind in options.kinds if kind != "buttress"],
        rows=[],
        notes=_notes(options, results),
        lines=[_line(kind, results[kind]) for kind in options.kinds],
    )


def run() -> Table:
    quick = os.environ.get("BENCH_REALTIME_QUICK", "") not in ("", "0")
    return bench(Options.quick() if quick else Options())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Realtime fan-out benchmark (see the module docstring).")
    parser.add_argument(
        "--quick", action="store_true", help="200 clients, 50 messages, 2 rounds, short phases"
    )
    parser.add_argument("--clients", type=int, help="WebSocket clients per server (default 1000)")
    parser.add_argument("--messages", type=int, help="broadcasts per throughput round (default 100)")
    parser.add_argument("--rounds", type=int, help="throughput rounds per server (default 5)")
    parser.add_argument("--latency-seconds", type=float, help="length of the 10 msg/s latency run")
    parser.add_argument("--only", help="comma-separated servers to run (naive,socketio,buttress)")
    parser.add_argument("--no-slow", action="store_true", help="skip the slow-consumer scenario")
    parser.add_argument("--profile", metavar="PATH", help="profile one server (yappi or cProfile) into PATH")
    parser.add_argument("--profiled", choices=KINDS, help="the server --profile profiles (default buttress)")
    args = parser.parse_args(argv)
    changes: dict[str, Any] = {}
    for name in ("clients", "messages", "rounds", "latency_seconds", "profile", "profiled"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.only:
        changes["kinds"] = tuple(kind for kind in KINDS if kind in args.only.split(","))
    if args.no_slow:
        changes["slow"] = False
    options = Options.quick(**changes) if args.quick else Options(**changes)
    print(bench(options).to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
