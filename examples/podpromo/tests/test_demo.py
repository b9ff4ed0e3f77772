"""``make demo`` in a subprocess, as a user runs it: a small batch, once on the embedded defaults and once
with ``--redis`` (a throwaway redis-server that the demo SIGKILLs and restarts). Both run at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.podpromo.demo.chaos import RedisChaos
from examples.podpromo.demo.processes import RedisServer

ROOT = Path(__file__).resolve().parents[3]
EPISODES = 8
TIME_BOUND = 60.0


def _start(*flags: str) -> tuple[subprocess.Popen[str], float]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("BUTTRESS_") or name.upper().startswith("BUTTRESS_TEST_")
    }
    command = [
        sys.executable,
        "-m",
        "examples.podpromo.demo",
        "--json",
        "--episodes",
        str(EPISODES),
        "--lease",
        "2",
    ]
    process = subprocess.Popen(
        [*command, *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process, time.monotonic()


def _finish(process: subprocess.Popen[str], started: float) -> tuple[dict[str, Any], float]:
    stdout, stderr = process.communicate(timeout=TIME_BOUND + 30)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout), time.monotonic() - started  # stdout is the JSON and nothing else


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, tuple[dict[str, Any], float]]]:
    started = {"embedded": _start()}
    if shutil.which("redis-server"):
        started["redis"] = _start("--redis")
    return {name: _finish(*pair) for name, pair in started.items()}


def _check_the_run(report: dict[str, Any], seconds: float) -> None:
    jobs, kill = report["jobs"], report["worker_kill"]
    assert seconds < TIME_BOUND
    assert report["workers"] == {"started": 3, "killed_by_the_demo": 1, "exited_by_themselves": 0}
    assert report["uploads"]["accepted"] == EPISODES + 1  # the batch, and the guest show's first file
    assert report["uploads"]["refused"] == {"file_too_large": 1, "file_type_rejected": 1, "quota_exceeded": 1}
    assert jobs["succeeded"] + jobs["failed"] + jobs["cancelled"] == report["uploads"]["accepted"]
    assert (jobs["lost"], jobs["completed_twice"]) == (0, 0)
    assert jobs["result_rows_per_episode_ok"]
    assert jobs["clips_per_episode_ok"]
    assert kill["killed"]
    assert kill["recovered"] >= 1
    assert kill["not_recovered"] == 0
    assert jobs["ran_more_than_once"] >= kill["recovered"]
    http = report["http"]
    assert http["transcribe"]["retries"] > 0  # the flaky host's 503s
    assert http["thumbnails"]["breaker_openings"] >= 1  # the dead host's breaker
    assert http["thumbnails"]["rejected_breaker"] > 0
    assert report["upstreams"]["thumbnails"] == {}  # nothing ever reached it
    assert report["storage"]["stored_files"] == report["uploads"]["accepted"]
    assert any(advice["ddl"].startswith("CREATE INDEX") for advice in report["database"]["advice"])


def test_the_demo_on_embedded_defaults(runs: dict[str, tuple[dict[str, Any], float]]) -> None:
    report, seconds = runs["embedded"]
    _check_the_run(report, seconds)
    assert report["backends"]["database"] == "sqlite (embedded, a temp file)"
    assert report["redis"]["in_use"] is None
    assert report["cache"]["backend"] == ["memory"]


def test_the_demo_with_its_own_redis_killed_midway(runs: dict[str, tuple[dict[str, Any], float]]) -> None:
    if "redis" not in runs:
        pytest.skip("redis-server is not on PATH")
    report, seconds = runs["redis"]
    _check_the_run(report, seconds)
    redis = report["redis"]
    assert redis["in_use"] == "started by the demo"
    assert redis["action"].startswith("SIGKILL and restart")
    assert 0 < redis["degraded_seconds"] < 10
    assert report["cache"]["backend"] == ["tiered"]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not on PATH")
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def test_on_a_users_redis_the_demo_drops_the_clients_and_leaves_the_server(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    monkeypatch.setenv("BUTTRESS_REDIS_URL", own_redis.url)  # as if it were the user's
    chaos = RedisChaos(None)
    client = redis.Redis.from_url(own_redis.url)
    client.set("podpromo:kept", "1")
    before = client.client_id()
    assert chaos.in_use == "BUTTRESS_REDIS_URL"
    chaos.strike()
    assert chaos.dropped >= 1
    assert client.client_id() != before  # its connection was dropped: redis-py opened another...
    assert client.get("podpromo:kept") == b"1"  # ...and the server and its data were left alone
    assert chaos.summary([])["action"].startswith("CLIENT KILL TYPE normal")
    client.close()


def test_with_its_own_redis_the_demo_kills_and_restarts_it(own_redis: RedisServer) -> None:
    chaos = RedisChaos(own_redis, down_for=0.2)
    assert chaos.in_use == "started by the demo"
    chaos.strike()
    assert not own_redis.answers()
    deadline = time.monotonic() + 10
    while chaos.tend() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert own_redis.answers()
    assert 0.2 <= chaos.summary([])["degraded_seconds"] < 10
