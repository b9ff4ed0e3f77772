"""The read-only ops endpoints: metrics, stats, errors, system, profiler, config, loggers and info."""

from __future__ import annotations

import logging
import math
import platform
import socket

from buttress.errors import MASK
from buttress.observe.system import SystemSampler

from .conftest import ADMIN_TOKEN, JWT_KEY, bearer, build, client_for, make_settings


async def test_metrics_is_prometheus_text_with_the_request_metrics() -> None:
    built = build()
    async with client_for(built.app) as client:
        await client.get("/health/live")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    assert "# TYPE buttress_server_requests_total counter" in text
    assert 'buttress_server_requests_total{method="GET",route="/health/live",status_class="2xx"} 1.0' in text
    assert (
        'buttress_server_request_duration_seconds_bucket{le="0.005",method="GET",route="/health/live"}'
        in text
    )
    assert "buttress_server_start_time_seconds 1.7e+09" in text


async def test_stats_gives_json_with_window_quantiles_and_no_nan() -> None:
    built = build()
    latency = built.metrics.histogram("buttress_test_latency_seconds", "Latency.", labels=("op",))
    for value in (0.1, 0.2, 0.3, 0.4):
        latency.labels(op="read").observe(value)
    built.metrics.gauge("buttress_test_ratio_percent", "A ratio.").set(math.nan)
    async with client_for(built.app) as client:
        response = await client.get("/stats")
    assert response.status_code == 200
    stats = response.json()
    [series] = stats["buttress_test_latency_seconds"]["series"]
    assert series["labels"] == {"op": "read"}
    assert series["count"] == 4
    assert series["sum"] == 1.0
    window = series["window"]
    assert window["count"] == 4
    assert window["max"] == 0.4
    assert 0.19 < window["p50"] < 0.31
    assert stats["buttress_test_ratio_percent"]["series"] == [{"labels": {}, "value": None}]
    assert stats["buttress_test_latency_seconds"]["type"] == "histogram"


async def test_errors_hide_tracebacks_unless_details_are_allowed() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    try:
        raise ValueError("bad input 42")  # noqa: TRY301
    except ValueError as exc:
        built.errors.record(exc, context={"order": 42})
    async with client_for(built.app) as client:
        anonymous = (await client.get("/errors")).json()
        admin = (await client.get("/errors", headers=bearer(ADMIN_TOKEN))).json()
        wrong = await client.get("/errors", headers=bearer("wrong"))
        limited = (await client.get("/errors?limit=1")).json()
        invalid = await client.get("/errors?limit=0")
    assert anonymous["details"] is False
    assert anonymous["groups"][0]["traceback"] == ""
    assert anonymous["groups"][0]["context"] == {}
    assert anonymous["groups"][0]["message"] == ""  # an exception message can carry anything
    assert anonymous["groups"][0]["count"] == 1
    assert admin["groups"][0]["message"] == "bad input <num>"
    assert admin["details"] is True
    assert "Traceback" in admin["groups"][0]["traceback"]
    assert admin["groups"][0]["context"] == {"order": 42}
    assert wrong.status_code == 401  # a wrong credential is never silently ignored
    assert len(limited["groups"]) == 1
    assert invalid.status_code == 422


async def test_errors_show_details_in_development() -> None:
    built = build(expose_details=True)
    try:
        raise KeyError("k")  # noqa: TRY301
    except KeyError as exc:
        built.errors.record(exc)
    async with client_for(built.app) as client:
        snapshot = (await client.get("/errors")).json()
    assert snapshot["details"] is True
    assert "KeyError" in snapshot["groups"][0]["traceback"]


async def test_errors_ignore_credentials_when_no_admin_auth_is_configured() -> None:
    built = build()
    async with client_for(built.app) as client:
        response = await client.get("/errors", headers=bearer("whatever"))
    assert response.status_code == 200
    assert response.json()["details"] is False


async def test_system_shows_the_latest_sample_and_feeds_the_gauges() -> None:
    sampler = SystemSampler(60.0, ["/", "/definitely/not/here"])
    built = build(sampler=sampler)
    async with client_for(built.app) as client:
        before = (await client.get("/system")).json()
        sampler.run_once()
        after = (await client.get("/system")).json()
        metrics = (await client.get("/metrics")).text
    assert before["latest"] is None
    assert before["running"] is False
    assert before["paths"] == ["/", "/definitely/not/here"]
    latest = after["latest"]
    assert latest["process_rss_bytes"] > 0
    assert [d["path"] for d in latest["disks"]] == ["/", "/definitely/not/here"]
    assert latest["disks"][1]["used_percent"] is None
    assert "FileNotFoundError" in latest["disks"][1]["error"]
    assert "buttress_system_process_rss_bytes" in metrics
    assert 'buttress_system_disk_used_percent{path="/"}' in metrics
    assert 'buttress_system_disk_free_bytes{path="/"}' in metrics
    assert "/definitely/not/here" not in metrics  # no reading, no series
    memory = built.metrics.get("buttress_system_memory_used_percent")
    assert memory is not None
    assert memory.value == latest["memory_percent"]


async def test_a_sampler_callback_of_the_caller_keeps_running() -> None:
    samples: list[object] = []
    sampler = SystemSampler(60.0, on_sample=samples.append)
    built = build(sampler=sampler)
    sampler.run_once()
    assert len(samples) == 1
    gauge = built.metrics.get("buttress_system_process_rss_bytes")
    assert gauge is not None
    assert gauge.value > 0


async def test_profiler_reports_what_was_recorded() -> None:
    built = build()
    built.profiler.record("orders.load", 0.2, 0.05)
    built.profiler.record("orders.load", 0.4, 0.05, failed=True)
    built.profiler.record("cache.get", 0.001)
    async with client_for(built.app) as client:
        report = (await client.get("/profiler")).json()
        top = (await client.get("/profiler?limit=1")).json()
    assert report["enabled"] is False
    assert report["names"] == 2
    first = report["by_total"][0]
    assert (first["name"], first["count"], first["errors"]) == ("orders.load", 2, 1)
    assert [row["name"] for row in top["by_total"]] == ["orders.load"]


async def test_admin_switches_the_profiler() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    built.profiler.record("x", 0.1)
    async with client_for(built.app, headers=bearer(ADMIN_TOKEN)) as client:
        started = (await client.post("/profiler/start")).json()
        stopped = (await client.post("/profiler/stop")).json()
        reset = (await client.post("/profiler/reset")).json()
    assert started == {"enabled": True, "names": 1}
    assert stopped == {"enabled": False, "names": 1}
    assert reset == {"enabled": False, "names": 0}


async def test_config_masks_secrets_and_shows_sources() -> None:
    settings = make_settings(
        security={"admin_token": ADMIN_TOKEN},
        server={"jwt_key": JWT_KEY},
        redis_url="redis://app:hunter2@cache:6379/0",
    )
    built = build(settings=settings)
    async with client_for(built.app) as client:
        response = await client.get("/config")
    assert response.status_code == 200
    rows = {row["variable"]: row for row in response.json()}
    assert rows["BUTTRESS_SECURITY__ADMIN_TOKEN"] == {
        "variable": "BUTTRESS_SECURITY__ADMIN_TOKEN",
        "value": MASK,
        "source": "init",
        "secret": True,
    }
    assert rows["BUTTRESS_SERVER__JWT_KEY"]["value"] == MASK
    assert rows["BUTTRESS_REDIS_URL"]["value"] == f"redis://app:{MASK}@cache:6379/0"
    assert rows["BUTTRESS_APP__NAME"]["source"] == "default"
    assert rows["BUTTRESS_OBSERVE__DISK_PATHS"]["value"] == '["/"]'
    for secret in (ADMIN_TOKEN, JWT_KEY, "hunter2"):
        assert secret not in response.text


async def test_loggers_lists_levels_and_admin_changes_them() -> None:
    name = "test.server.loggers.orders"
    logger = logging.getLogger(name)
    built = build(admin_token=ADMIN_TOKEN)
    try:
        async with client_for(built.app, headers=bearer(ADMIN_TOKEN)) as client:
            listed = (await client.get("/loggers")).json()
            changed = await client.post(f"/loggers/{name}", json={"level": "debug"})
            assert logger.level == logging.DEBUG
            assert logger.isEnabledFor(logging.DEBUG)
            reset = await client.post(f"/loggers/{name}", json={"level": "NOTSET"})
            bad = await client.post(f"/loggers/{name}", json={"level": "LOUD"})
            missing = await client.post(f"/loggers/{name}", json={})
    finally:
        logger.setLevel(logging.NOTSET)
    assert listed["levels"] == ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"]
    assert listed["loggers"][0]["name"] == "root"
    entry = next(row for row in listed["loggers"] if row["name"] == name)
    assert entry["level"] == "NOTSET"
    assert changed.status_code == 200
    assert changed.json() == {"name": name, "level": "DEBUG", "effective_level": "DEBUG"}
    assert reset.json()["level"] == "NOTSET"
    assert logger.level == logging.NOTSET
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["loc"] == ["body", "level"]
    assert missing.status_code == 422


async def test_the_root_logger_is_reachable_by_name() -> None:
    root = logging.getLogger()
    previous = root.level
    built = build(admin_token=ADMIN_TOKEN)
    try:
        async with client_for(built.app, headers=bearer(ADMIN_TOKEN)) as client:
            response = await client.post("/loggers/root", json={"level": "ERROR"})
        assert root.level == logging.ERROR
    finally:
        root.setLevel(previous)
    assert response.json()["name"] == "root"


async def test_info_reports_versions_host_and_uptime_from_the_clock() -> None:
    built = build(app={"name": "orders-api", "environment": "staging"})
    built.clock.advance(90.5)
    async with client_for(built.app) as client:
        info = (await client.get("/info")).json()
    assert info["name"] == "orders-api"
    assert info["environment"] == "staging"
    assert info["version"] == built.ops.version
    assert info["python"] == platform.python_version()
    assert info["implementation"] == platform.python_implementation()
    assert info["hostname"] == socket.gethostname()
    assert info["start_time"] == 1_700_000_000.0
    assert info["started_at"] == "2023-11-14T22:13:20.000Z"
    assert info["uptime_seconds"] == 90.5
