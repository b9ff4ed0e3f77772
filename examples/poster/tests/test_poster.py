"""The poster against real loopback upstreams: retries, Retry-After, keys, health checks and schedules."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr

from buttress.clock import FakeClock
from buttress.config import reset_settings
from buttress.container import get_container
from buttress.db import Database
from buttress.errors import ConfigError, UpstreamStatusError
from buttress.jobs import Jobs, Scheduler
from buttress.observe.logging import configure_logging
from buttress.testing import Fault, Upstream
from examples.poster.__main__ import main
from examples.poster.checks import poster_health
from examples.poster.client import Poster, http_settings
from examples.poster.config import CHIRP, Network, load_config
from examples.poster.jobs import post_slot

CHIRP_KEY = "chirp-secret-7f3a9c"
SKYLINE_KEY = "skyline-secret-41be02"

MakeUpstream = Callable[..., Upstream]


def environ(upstream: Upstream, **extra: str) -> dict[str, str]:
    env = {"POSTER_CHIRP_URL": upstream.url("chirp").rstrip("/"), "POSTER_CHIRP_KEY": CHIRP_KEY}
    env |= {"POSTER_SKYLINE_URL": upstream.url("skyline").rstrip("/"), "POSTER_SKYLINE_KEY": SKYLINE_KEY}
    return {**env, **extra}


def export(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def networks(upstream_factory: MakeUpstream) -> Upstream:
    # seed 6: under a 50% fault, each network's first post fails and the next three pass
    up = upstream_factory(seed=6)
    up.add("chirp")
    up.add("skyline")
    return up


@pytest.fixture(autouse=True)
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every log line of the test, as JSON; afterwards logging is put back as it was."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # the original list is put back afterwards
    level, stream = root.level, io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=stream)
    yield stream
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.fixture
def make_poster() -> Iterator[Callable[..., Poster]]:
    made: list[Poster] = []

    def make(upstream: Upstream, clock: FakeClock | None = None, **extra: str) -> Poster:
        made.append(Poster(load_config(environ(upstream, **extra)), clock=clock or FakeClock()))
        return made[-1]

    yield make
    for poster in made:
        poster.close()


def test_a_503_then_a_200_is_retried_and_the_key_goes_in_a_header(
    networks: Upstream, make_poster: Callable[..., Poster]
) -> None:
    networks.set_fault("chirp", Fault(errors={503: 0.5}))
    poster = make_poster(networks)
    chirp = poster.config.networks[0]
    response = poster.post(chirp, "hello", key="k1")
    assert response.status_code == 200
    assert networks.outcomes("chirp") == {"503": 1, "200": 1}
    assert response.request.headers["authorization"] == f"Bearer {CHIRP_KEY}"
    assert response.request.headers["idempotency-key"] == "chirp:k1"
    assert CHIRP_KEY not in str(response.request.url)


def test_a_429_waits_out_its_retry_after(networks: Upstream, make_poster: Callable[..., Poster]) -> None:
    networks.set_fault("skyline", Fault(errors={429: 0.5}, retry_after=7))
    clock = FakeClock()
    poster = make_poster(networks, clock)
    response = poster.post(poster.config.networks[1], "hello", key="k2")
    assert response.status_code == 200
    assert networks.outcomes("skyline") == {"429": 1, "200": 1}
    assert response.request.headers["x-api-key"] == SKYLINE_KEY
    assert max(clock.sleeps, default=0) >= 7  # waited on the injected clock, not for real


def test_three_retries_then_the_error_reaches_the_caller(
    networks: Upstream, make_poster: Callable[..., Poster]
) -> None:
    networks.set_fault("chirp", Fault(errors={503: 1.0}))
    poster = make_poster(networks)
    with pytest.raises(UpstreamStatusError) as caught:
        poster.post_all("hello")
    assert caught.value.status_code == 503
    assert networks.calls("chirp", "/v1/posts") == 4  # the first try and exactly 3 retries
    assert networks.calls("skyline") == 0


def test_keys_never_reach_the_logs(
    networks: Upstream, logs: io.StringIO, make_poster: Callable[..., Poster]
) -> None:
    networks.set_fault("chirp", Fault(errors={503: 0.5}))
    assert make_poster(networks).post_all("hello") == {"chirp": 200, "skyline": 200}
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert [line["network"] for line in lines if line["event"] == "posted"] == ["chirp", "skyline"]
    assert CHIRP_KEY not in logs.getvalue()
    assert SKYLINE_KEY not in logs.getvalue()


@pytest.mark.usefixtures("isolated_settings")
def test_a_missing_required_key_is_refused_before_anything_is_sent(
    networks: Upstream, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = environ(networks)
    del env["POSTER_CHIRP_KEY"]
    with pytest.raises(ConfigError) as caught:
        load_config({**env, "POSTER_POSTS_PER_DAY": "5"})
    assert [p.variable for p in caught.value.problems] == ["POSTER_CHIRP_KEY", "POSTER_POSTS_PER_DAY"]
    assert "set it and start again" in str(caught.value)
    export(monkeypatch, env)
    assert main(["post-now"]) == 2
    assert "POSTER_CHIRP_KEY=<missing>" in capsys.readouterr().err
    assert networks.calls("chirp") == networks.calls("skyline") == 0


@pytest.mark.parametrize(
    "url", ["http://user:URLPW@127.0.0.1:1", "ftp://files.example", "api.example", "http://h:x"]
)
@pytest.mark.usefixtures("isolated_settings")
def test_a_bad_network_url_is_refused_and_its_password_never_shown(
    networks: Upstream, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ(networks, POSTER_SKYLINE_URL=url))
    assert [p.variable for p in caught.value.problems] == ["POSTER_SKYLINE_URL"]
    assert "absolute http(s) URL" in str(caught.value)
    export(monkeypatch, environ(networks, POSTER_CHIRP_URL=url))
    assert main(["post-now"]) == 2
    err = capsys.readouterr().err
    assert "POSTER_CHIRP_URL=" in err
    assert "URLPW" not in err
    assert "Traceback" not in err
    assert networks.calls("chirp") == networks.calls("skyline") == 0


def test_a_policy_claims_the_host_and_port_never_the_userinfo() -> None:
    network = Network(CHIRP, "http://u:pw@API.x:81", SecretStr("k"))  # load_config refuses it; the client too
    assert http_settings((network,)).policies["chirp"].hosts == ("api.x:81",)


@pytest.mark.usefixtures("isolated_settings")
def test_a_database_that_cannot_be_opened_is_one_line_without_its_password(
    networks: Upstream, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    export(monkeypatch, environ(networks))
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", "postgresql://postgres:DBPW-s3cret@127.0.0.1:1/test")
    reset_settings()  # the upstream fixture has read the settings already
    assert main(["worker"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "DBPW-s3cret" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert "database cannot be opened" in line
    assert "check BUTTRESS_DATABASE_URL" in line


def test_a_missing_optional_key_warns_and_skips_its_network(
    networks: Upstream, logs: io.StringIO, make_poster: Callable[..., Poster]
) -> None:
    poster = make_poster(networks, POSTER_SKYLINE_KEY="")
    assert [network.name for network in poster.config.networks] == ["chirp"]
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    [warning] = [line for line in lines if line["event"] == "network skipped"]
    assert (warning["level"], warning["network"]) == ("warning", "skyline")
    assert poster.post_all("hello") == {"chirp": 200}
    assert networks.calls("skyline") == 0
    report = poster_health(poster.config).run_sync("startup")
    assert (report.status, report.http_status) == ("warn", 200)
    assert "POSTER_SKYLINE_KEY is not set" in (report["poster-keys"].output or "")


def test_a_dead_host_fails_the_health_check(networks: Upstream, make_poster: Callable[..., Poster]) -> None:
    config = load_config(environ(networks))
    assert poster_health(config).run_sync("startup").status == "pass"
    networks.set_down("skyline")  # optional network: a warning, the service stays up
    report = poster_health(config).run_sync("startup")
    assert (report.status, report["skyline"].status) == ("warn", "fail")
    networks.set_down("chirp")  # required network: the check fails, startup stops
    report = poster_health(config).run_sync("startup")
    assert (report.status, report.http_status) == ("fail", 503)
    assert [outcome.name for outcome in report.failed_critical] == ["chirp"]


def test_a_refused_key_fails_the_health_check(networks: Upstream) -> None:
    networks.set_fault("chirp", Fault(status=401), path="/v1/me")  # the verify endpoint refuses the key
    report = poster_health(load_config(environ(networks))).run_sync("startup")
    assert (report.status, report["chirp"].status) == ("fail", "fail")
    assert "returned 401" in (report["chirp"].output or "")
    assert CHIRP_KEY not in report.to_json()


@pytest.mark.usefixtures("isolated_settings")
def test_the_check_command_exits_1_on_a_dead_required_host(
    networks: Upstream, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    export(monkeypatch, environ(networks))
    assert main(["check"]) == 0
    networks.set_down("chirp")
    assert main(["check"]) == 1
    assert main(["post-now"]) == 1  # the startup checks run first: nothing is posted to a dead network
    assert networks.calls("chirp", "/v1/posts") == networks.calls("skyline", "/xrpc/post") == 0
    assert "chirp" in capsys.readouterr().out


@pytest.mark.parametrize(("per_day", "posts"), [("1", 1), ("2", 2), ("3", 3)])
@pytest.mark.usefixtures("isolated_settings")
def test_the_named_schedules_post_the_cadence_a_day(
    networks: Upstream, tmp_path: Path, make_poster: Callable[..., Poster], per_day: str, posts: int
) -> None:
    clock = FakeClock(start_time=datetime(2027, 5, 3, tzinfo=UTC).timestamp())
    poster = make_poster(networks, clock, POSTER_POSTS_PER_DAY=per_day)
    db = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    jobs = Jobs(db, clock=clock)
    scheduler = Scheduler(jobs)
    with get_container().override(Poster, poster):
        for _ in range(24):  # one day, an hour at a time
            clock.advance(3600)
            if scheduler.tick().created:
                asyncio.run(burst(jobs))
    fired = sorted(info.fire_at for info in jobs.list(task=post_slot.name) if info.fire_at is not None)
    assert [f"{datetime.fromtimestamp(at, UTC):%H:%M}" for at in fired] == ["09:00", "13:00", "19:00"]
    assert networks.calls("chirp", "/v1/posts") == networks.calls("skyline", "/xrpc/post") == posts
    db.close()


async def burst(jobs: Jobs) -> None:
    """Run what is due, then close this loop's connections (each asyncio.run is a new loop)."""
    await jobs.worker(queues=["poster"], scheduler=False).run(burst=True)
    await jobs.db.aclose()


def test_the_readme_python_blocks_run() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - the README's own examples


def test_the_worker_command_stores_the_schedules_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUTTRESS_", "POSTER_"))}
    env |= {"BUTTRESS_DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}", "POSTER_CHIRP_KEY": CHIRP_KEY}
    root = Path(__file__).parents[3]
    command = [sys.executable, "-m", "examples.poster", "worker", "--fake-networks"]
    worker = subprocess.Popen(
        command, cwd=root, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        seen = ""
        assert worker.stderr is not None
        while "schedules created" not in seen and time.monotonic() < deadline and worker.poll() is None:
            seen += worker.stderr.readline()  # a line at a time until the scheduler has stored them
        assert "schedules created: post-evening, post-morning, post-noon" in seen
        assert CHIRP_KEY not in seen
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err
    assert out.startswith("health: ⚠ warn (startup)")  # the startup checks ran first (skyline has no key)
