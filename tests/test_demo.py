"""`buttress demo http`: the HTTP batch through per-host policies, next to plain httpx, on real upstreams."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from buttress.cli import app
from buttress.demo import DemoReport, render_report, run_demo
from buttress.demo._batch import Outcome, Progress
from buttress.demo._ops import OpsServer, probe
from buttress.demo._report import percentile, what_it_bought
from buttress.demo._run import _run_in_thread
from buttress.demo._scenario import DOMAINS, plan
from buttress.errors import ValidationError

NAMES = [spec.name for spec in DOMAINS]
PASS_KEYS = {"client", "wall_seconds", "overall", "domains"}
STATS_KEYS = {
    "requests", "succeeded", "failed", "success_rate", "failures", "attempts", "upstream_calls", "retries",
    "retries_denied", "breaker_openings", "short_circuited", "limiter_waits", "limiter_wait_seconds",
    "p50_ms", "p95_ms", "p99_ms",
}  # fmt: skip
REPORT_KEYS = {
    "seed", "requests", "concurrency", "policies", "domains", "ops", "buttress", "baseline", "cached",
    "summary", "wall_seconds",
}  # fmt: skip
CACHED_KEYS = {
    "requests", "from_cache", "sent", "hit_rate", "succeeded", "success_rate", "upstream_calls",
    "wall_seconds", "uncached_wall_seconds", "saved_seconds", "p50_ms", "p95_ms",
}  # fmt: skip


@pytest.fixture(scope="module")
def clean_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No BUTTRESS_* variable of the developer's, fresh settings and metrics, for the whole module."""
    from buttress.config import reset_settings
    from buttress.observe.metrics import reset_metrics

    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith("BUTTRESS_") and not name.upper().startswith("BUTTRESS_TEST_"):
                patch.delenv(name)
        patch.chdir(tmp_path_factory.mktemp("demo"))
        reset_settings()
        reset_metrics()
        yield
        reset_settings()


@pytest.fixture(scope="module")
def report(clean_settings: None) -> DemoReport:
    return run_demo(requests=50, seed=3, progress=False)


def _rates(report: DemoReport, domain: str) -> tuple[float, float]:
    return report.buttress.domains[domain].success_rate, report.baseline.domains[domain].success_rate


def _check_shape(document: dict[str, Any]) -> None:
    assert set(document) == REPORT_KEYS
    assert set(document["cached"]) == CACHED_KEYS
    for client in ("buttress", "baseline"):
        assert set(document[client]) == PASS_KEYS
        assert set(document[client]["overall"]) == STATS_KEYS
        assert list(document[client]["domains"]) == NAMES
        for stats in document[client]["domains"].values():
            assert set(stats) == STATS_KEYS


def test_the_batch_goes_through_buttress_and_plain_httpx(report: DemoReport) -> None:
    document = json.loads(json.dumps(report.to_dict()))
    _check_shape(document)
    assert document["requests"] == 50
    assert document["seed"] == 3
    assert document["concurrency"] == 50
    for client in (report.buttress, report.baseline):
        assert client.overall.requests == 50
        assert [stats.requests for stats in client.domains.values()] == [10] * 5
        assert client.wall_seconds > 0
    assert _rates(report, "healthy") == (1.0, 1.0)
    assert _rates(report, "slow") == (1.0, 1.0)


def test_the_breaker_short_circuits_the_dead_host(report: DemoReport) -> None:
    dead, plain = report.buttress.domains["dead"], report.baseline.domains["dead"]
    assert (dead.success_rate, plain.success_rate) == (0.0, 0.0)
    assert dead.breaker_openings >= 1
    assert dead.short_circuited > 0
    assert dead.failures.get("CircuitOpen", 0) > 0
    assert plain.failures == {"ConnectError": 10}
    assert dead.upstream_calls == plain.upstream_calls == 0  # a refused connection never reaches it


def test_retries_lift_the_flaky_host_and_the_limiter_the_limited_one(report: DemoReport) -> None:
    flaky, plain = report.buttress.domains["flaky"], report.baseline.domains["flaky"]
    assert flaky.success_rate > plain.success_rate
    assert flaky.retries > 0
    assert flaky.upstream_calls == 10 + flaky.retries  # every retry reached the server
    assert plain.failures == {"503": plain.failed}
    limited = report.buttress.domains["limited"]
    assert limited.limiter_waits > 0
    assert limited.success_rate > report.baseline.domains["limited"].success_rate
    assert report.buttress.overall.success_rate > report.baseline.overall.success_rate
    assert report.buttress.overall.retries == sum(s.retries for s in report.buttress.domains.values())
    assert report.summary[0].startswith("success rate ")
    assert any(line.startswith("dead: the breaker opened") for line in report.summary)


def test_the_cached_pass_sends_only_what_failed_the_first_time(report: DemoReport) -> None:
    cached, first = report.cached, report.buttress.overall
    assert cached.requests == 50
    assert cached.from_cache == first.succeeded  # every success of the first pass, and only those
    assert cached.sent == first.failed == 50 - cached.from_cache
    assert cached.hit_rate == round(cached.from_cache / 50, 4)
    assert 0 < cached.hit_rate < 1  # the dead host's failures are never cached
    dead = report.buttress.domains["dead"].failed
    assert dead == 10
    assert cached.upstream_calls <= 3 * (cached.sent - dead)  # 3 attempts at most; dead's never connect
    assert cached.succeeded >= cached.from_cache
    assert cached.uncached_wall_seconds == report.buttress.wall_seconds
    assert cached.wall_seconds < cached.uncached_wall_seconds
    assert cached.saved_seconds == round(cached.uncached_wall_seconds - cached.wall_seconds, 3)
    assert report.summary[-1] == cached.summary()
    assert report.summary[-1].startswith(f"cache: {cached.from_cache} of 50 GETs served from memory (")


def test_the_ops_server_answered_mid_run(report: DemoReport) -> None:
    assert report.ops.url.startswith("http://127.0.0.1:")
    assert report.ops.error is None
    assert report.ops.health_status_code == 200
    assert report.ops.health_status in {"pass", "warn"}
    assert report.ops.http_metric_samples > 0  # the batch's own buttress_http_* series, live


def test_hosts_are_named_by_domain_not_by_port(report: DemoReport) -> None:
    hosts = {spec.name: spec.host for spec in DOMAINS}
    assert hosts == {name: f"{name}.demo.test" for name in NAMES}
    # What /breakers listed halfway (every request starts at once: 50 in flight), beside the breakers other
    # tests of this process left behind; the demo's own upstreams go by name, their ports in log lines below.
    assert {f"http:{host}" for host in hosts.values()} <= set(report.ops.breakers)


def test_the_breaker_log_line_names_the_dead_host(
    clean_settings: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="buttress.resilience"):
        run_demo(requests=25, seed=3, progress=False)
    transitions = [
        record.getMessage() for record in caplog.records if "circuit breaker" in record.getMessage()
    ]
    assert "circuit breaker 'http:dead.demo.test': closed -> open" in transitions
    assert not any("127.0.0.1" in line for line in transitions)


def test_a_health_warning_is_explained_in_one_line(report: DemoReport) -> None:
    busy = replace(report.ops, health_status="warn", health_warnings=("system: cpu 100.0% >= cpu_warn=90%",))
    output = io.StringIO()
    Console(file=output, width=400).print(render_report(replace(report, ops=busy)))
    lines = [line for line in output.getvalue().splitlines() if "cpu 100.0% >= cpu_warn=90%" in line]
    assert len(lines) == 1
    assert "optional check" in lines[0]
    assert "still answers 200" in lines[0]
    assert "the batch, its five upstreams and this server share this machine's CPU" in lines[0]
    calm = replace(report.ops, health_status="pass", health_warnings=())
    output = io.StringIO()
    Console(file=output, width=400).print(render_report(replace(report, ops=calm)))
    assert "optional check" not in output.getvalue()


def test_same_seed_same_batch_and_baseline_fates(report: DemoReport) -> None:
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=140)
    again = run_demo(requests=50, seed=3, progress=True, console=console)
    for domain in NAMES:
        assert again.buttress.domains[domain].requests == report.buttress.domains[domain].requests
    for domain in ("healthy", "flaky", "dead"):
        assert again.baseline.domains[domain].failures == report.baseline.domains[domain].failures
    shown = output.getvalue()
    assert "ops server: http://127.0.0.1:" in shown
    assert "buttress: per-host policies" in shown  # the live table, on a terminal
    assert "baseline: plain httpx" in shown
    assert "buttress + cache: the same batch again" in shown


def test_the_report_renders_both_clients_side_by_side(report: DemoReport) -> None:
    output = io.StringIO()
    Console(file=output, width=120).print(render_report(report))
    text = output.getvalue()
    assert "what the policies and the cache bought:" in text
    assert "the same 50 GETs again through buttress, a memory cache in front" in text
    assert f"{report.cached.wall_seconds:.2f} s / {report.cached.uncached_wall_seconds:.1f} s" in text
    assert "CircuitOpen: " in text
    assert "ConnectError: 10" in text
    assert "changed: retry initial_delay 0.2 s" in text
    assert f"ops server {report.ops.url}, asked halfway: /health" in text


def test_demo_command_prints_json_only_on_stdout(clean_settings: None) -> None:
    result = CliRunner().invoke(app, ["demo", "http", "--requests", "25", "--seed", "5", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    _check_shape(document)
    assert (document["requests"], document["seed"]) == (25, 5)
    assert document["ops"]["health_status_code"] == 200
    assert document["ops"]["http_metric_samples"] > 0
    assert f"ops server: {document['ops']['url']}  (try /metrics, /health, /breakers)" in result.stderr


def test_demo_command_prints_the_tables(clean_settings: None) -> None:
    result = CliRunner().invoke(app, ["demo", "http", "--requests", "5"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ops server: http://127.0.0.1:")
    assert "5 GETs, 50 in flight, seed 7: buttress / httpx" in result.stdout
    assert "what buttress did" in result.stdout
    assert "latency in ms: buttress / httpx" in result.stdout
    assert "the same 5 GETs again through buttress, a memory cache in front" in result.stdout


def test_too_few_requests_are_refused() -> None:
    with pytest.raises(ValidationError, match="requests must be an integer >= 5") as raised:
        run_demo(requests=4)
    assert raised.value.context["field"] == "requests"
    result = CliRunner().invoke(app, ["demo", "http", "--requests", "4"])
    assert result.exit_code == 2


def test_the_plan_spreads_requests_evenly_in_a_seeded_order() -> None:
    planned = plan(12, seed=1)
    assert [sum(1 for p in planned if p.domain == name) for name in NAMES] == [3, 3, 2, 2, 2]
    assert len({p.path for p in planned}) == 12
    assert plan(12, seed=1) == planned
    assert [p.domain for p in plan(12, seed=2)] != [p.domain for p in planned]


def test_one_retry_is_singular(report: DemoReport) -> None:
    limited = replace(report.buttress.domains["limited"], retries=1, limiter_waits=2)
    ours = replace(report.buttress, domains={**report.buttress.domains, "limited": limited})
    assert "and 1 retry waited out Retry-After" in what_it_bought(ours, report.baseline)[-1]


def test_percentile_is_a_value_that_was_seen() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0
    assert percentile([7.0], 0.0) == 7.0


async def test_progress_wakes_a_waiter_once_enough_are_done() -> None:
    progress = Progress(["a"])
    await progress.reached(0)  # already there
    progress.add(Outcome("a", "ok", 0.01))
    await progress.reached(1)
    assert progress.done == 1
    assert progress.by_domain["a"][0].ok


async def test_probe_of_a_silent_port_reports_the_error() -> None:
    from buttress.testing import Fault, Upstream

    with Upstream() as upstream:
        upstream.add("gone", Fault(down=True))
        probed = await probe(upstream.url("gone").rstrip("/"))
    assert probed.health_status_code is None
    assert probed.error is not None
    assert probed.error.startswith("ConnectError")


async def test_the_loop_runs_in_its_own_thread_even_under_a_running_loop() -> None:
    async def answer() -> str:
        return threading.current_thread().name

    async def fail() -> None:
        raise KeyError("from the worker")

    assert _run_in_thread(answer()) == "buttress-demo-loop"  # asyncio.run here would refuse
    with pytest.raises(KeyError, match="from the worker"):
        _run_in_thread(fail())


def test_ops_server_that_cannot_start_raises() -> None:
    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "broken on purpose"})

    with pytest.raises(RuntimeError, match=r"ops server did not start \(exit code 3\)"):
        OpsServer(broken).start()


def test_demo_without_a_command_names_http_and_make_demo() -> None:
    result = CliRunner().invoke(app, ["demo"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert "`buttress demo http`: the HTTP policies next to plain httpx" in text
    assert "`make demo` runs the full-layer demo (examples/podpromo" in text
    assert "http An HTTP batch through per-host policies" in text
