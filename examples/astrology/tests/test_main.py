"""``python -m examples.astrology serve`` on embedded defaults: a real process, no service, no settings."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from examples.astrology.__main__ import main

from .conftest import wait_for

ROOT = Path(__file__).resolve().parents[3]


def _collect(process: subprocess.Popen[bytes], lines: list[str]) -> threading.Thread:
    """Read the process's output into ``lines`` as it comes (a thread, so no read ever blocks the test)."""

    def read() -> None:
        assert process.stdout is not None
        lines.extend(raw.decode(errors="replace") for raw in process.stdout)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _address(process: subprocess.Popen[bytes], lines: list[str]) -> str | None:
    assert process.poll() is None, "serve exited early:\n" + "".join(lines)
    found = [re.search(r"Uvicorn running on (http://[\d.]+:\d+)", line) for line in list(lines)]
    return next((match.group(1) for match in found if match), None)


def test_serve_runs_the_api_and_a_worker_on_sqlite_with_no_service(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUTTRESS_", "ASTRO_"))}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "examples.astrology", "serve", "--port", "0"]  # uvicorn says which port
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines: list[str] = []
    reader = _collect(process, lines)
    try:
        address = wait_for(lambda: _address(process, lines), 60)
        with httpx.Client(base_url=address, timeout=10) as http:
            assert len(http.get("/signs").json()) == 12
            batch = http.post(
                "/batches", json={"people": [{"name": "Ada", "birth_date": "1990-04-17"}]}
            ).json()
            assert batch["token"]  # serve made a signing key for this process
            [reading] = batch["readings"]
            done = wait_for(lambda: http.get(f"/readings/{reading}").json()["text"], 60)  # its worker thread
            assert done.startswith("Ada, a ")
            assert (tmp_path / "buttress.db").exists()  # the embedded SQLite default
            # serve always has a JWT key (a random one here), which is admin auth: the routes exist, 401
            assert http.post("/ops/profiler/start").status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        reader.join(10)
        assert process.stdout is not None
        process.stdout.close()
    assert "a random key signs this process's channel tokens" in "".join(lines)
    assert process.returncode == 0


@pytest.mark.parametrize(
    "url", ["sqlite:////nonexistent-dir/astro.db", "postgresql://postgres:PGPW-s3cret@127.0.0.1:1/astro"]
)
def test_serve_on_a_database_it_cannot_open_says_so_in_one_line(
    configure: Callable[..., None], capsys: pytest.CaptureFixture[str], url: str
) -> None:
    configure(BUTTRESS_DATABASE_URL=url)
    assert main(["serve", "--port", "0"]) == 1  # before uvicorn or the worker start
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith("error: the ")
    assert "check BUTTRESS_DATABASE_URL" in line
    assert "PGPW-s3cret" not in captured.out + captured.err
