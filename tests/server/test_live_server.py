"""The ops server over real sockets: uvicorn in a thread, and `buttress serve` as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from buttress.cli import app as cli_app
from buttress.server import PROBLEM_CONTENT_TYPE
from tests._ports import free_port

from .conftest import ADMIN_TOKEN, bearer, build, install_isolated

STARTUP_SECONDS = 20.0


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:  # bounded wait for the socket to be bound and the lifespan to start
        assert thread.is_alive(), "uvicorn stopped during startup"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_SECONDS)
        assert not thread.is_alive()


def test_the_ops_app_over_a_real_socket() -> None:
    built = build(admin_token=ADMIN_TOKEN)

    @built.app.get("/boom")
    def boom() -> None:
        raise RuntimeError("internal detail")

    with serving(built.app) as url, httpx.Client(base_url=url, timeout=10) as client:
        live = client.get("/health/live", headers={"X-Request-ID": "live-1"})
        assert live.status_code == 200
        assert live.headers["content-type"] == "application/health+json"
        assert live.headers["x-request-id"] == "live-1"
        assert client.post("/profiler/start", headers=bearer(ADMIN_TOKEN)).status_code == 200
        denied = client.post("/profiler/stop", headers=bearer("wrong"))
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"].startswith("Bearer")
        boom = client.get("/boom")
        assert boom.status_code == 500
        assert boom.headers["content-type"] == PROBLEM_CONTENT_TYPE
        assert "internal detail" not in boom.text
        metrics = client.get("/metrics").text
        assert built.ops.sampler.running  # the lifespan ran under uvicorn
    assert 'route="/boom",status_class="5xx"' in metrics
    assert built.profiler.enabled
    assert not built.ops.sampler.running


def test_install_keeps_the_users_lifespan_state_under_uvicorn() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"greeting": "hello from the user's lifespan"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/greet")
    def greet(request: Request) -> str:
        return str(request.state.greeting)

    install_isolated(app)
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/greet").json() == "hello from the user's lifespan"
        assert client.get("/ops/health/ready").status_code == 200
    assert events == ["startup", "shutdown"]


# --- buttress serve --------------------------------------------------------------------------------------


@dataclass
class Served:
    """A `buttress serve` subprocess: its port, and its stderr once it has exited."""

    port: int
    process: subprocess.Popen[str]
    stderr: str = ""


@contextmanager
def buttress_serve(cwd: Path, **variables: str) -> Iterator[Served]:
    """`buttress serve` on a spare loopback port, with no BUTTRESS_* variable but ``variables``; yields once
    it answers, then stops it with SIGTERM (as a process manager does)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("BUTTRESS_")}
    script = Path(sys.executable).parent / "buttress"
    process = subprocess.Popen(
        [str(script), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env={**environ, **variables},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(port, process)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "buttress serve did not answer in time"
            try:
                httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        served.stderr = process.communicate(timeout=STARTUP_SECONDS)[1]


def test_buttress_serve_runs_the_ops_server(tmp_path: Path) -> None:
    with buttress_serve(tmp_path, BUTTRESS_SECURITY__ADMIN_TOKEN=ADMIN_TOKEN) as served:
        base = f"http://127.0.0.1:{served.port}"
        response = httpx.get(f"{base}/health/live", timeout=5)
        assert response.status_code == 200
        assert response.json()["status"] == "pass"
        admin = httpx.post(f"{base}/profiler/start", headers=bearer(ADMIN_TOKEN), timeout=5)
        assert admin.status_code == 200
    # uvicorn shuts down gracefully, then re-raises the signal it caught, as a process manager expects
    assert served.process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in served.stderr


def test_buttress_serve_refuses_an_invalid_configuration() -> None:
    result = CliRunner().invoke(cli_app, ["serve"], env={"BUTTRESS_SERVER__PORT": "99999"})
    assert result.exit_code == 1
    assert "BUTTRESS_SERVER__PORT='99999'" in result.stderr


def test_buttress_serve_rejects_a_port_out_of_range() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--port", "70000"])
    assert result.exit_code == 2


def test_buttress_serve_passes_host_and_port_to_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    runner = CliRunner()
    assert runner.invoke(cli_app, ["serve"], env={"BUTTRESS_SERVER__PORT": "9100"}).exit_code == 0
    assert runner.invoke(cli_app, ["serve", "--host", "0.0.0.0", "--port", "9200"]).exit_code == 0  # noqa: S104
    assert [(c["host"], c["port"]) for c in calls] == [("127.0.0.1", 9100), ("0.0.0.0", 9200)]  # noqa: S104
    assert isinstance(calls[0]["app"], FastAPI)
    assert calls[0]["log_config"] is None
