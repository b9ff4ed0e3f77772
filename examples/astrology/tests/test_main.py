"""``python -m examples.astrology serve`` on embedded defaults: a real process, no service, no settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from tests._ports import free_port

from .conftest import wait_for

ROOT = Path(__file__).resolve().parents[3]


def _answers(http: httpx.Client, path: str) -> httpx.Response | None:
    try:
        return http.get(path)
    except httpx.TransportError:
        return None


def test_serve_runs_the_api_and_a_worker_on_sqlite_with_no_service(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUTTRESS_", "ASTRO_"))}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "examples.astrology", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            signs = wait_for(lambda: _answers(http, "/signs"), 30)
            assert len(signs.json()) == 12
            batch = http.post(
                "/batches", json={"people": [{"name": "Ada", "birth_date": "1990-04-17"}]}
            ).json()
            assert batch["token"]  # serve made a signing key for this process
            [reading] = batch["readings"]
            done = wait_for(
                lambda: http.get(f"/readings/{reading}").json()["text"], 20
            )  # the worker thread ran it
            assert done.startswith("Ada, a ")
            assert (tmp_path / "buttress.db").exists()  # the embedded SQLite default
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    assert "a random key signs this process's channel tokens" in output
    assert process.returncode == 0
