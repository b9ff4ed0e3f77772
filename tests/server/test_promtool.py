"""`promtool check metrics` accepts what /metrics renders (names, help, types, label syntax)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from buttress.observe.system import SystemSampler

from .conftest import ADMIN_TOKEN, bearer, build, client_for


def services_required() -> bool:
    return os.environ.get("BUTTRESS_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}


def need_promtool() -> str:
    """Path of promtool: a skip locally without it, a failure under BUTTRESS_REQUIRE_SERVICES=1."""
    path = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
    if path is not None:
        return path
    message = "promtool is needed by this test (Debian package prometheus)"
    if services_required():
        pytest.fail(message + " and BUTTRESS_REQUIRE_SERVICES=1 turns the skip into a failure", pytrace=False)
    pytest.skip(message)
    raise AssertionError("unreachable")  # pragma: no cover


async def _metrics_page() -> bytes:
    sampler = SystemSampler(3600.0, ["/"])
    built = build(admin_token=ADMIN_TOKEN, sampler=sampler)
    sampler.run_once()  # the buttress_system_* gauges
    latency = built.metrics.histogram("buttress_test_call_seconds", "Call latency.", labels=("host",))
    latency.labels(host='a "quoted" \\ host\nname').observe(0.3)  # label values that need escaping

    @built.app.get("/items/{item_id}")
    async def item(item_id: int) -> int:
        return item_id

    async with client_for(built.app) as client:
        for path in ("/health/live", "/health/ready", "/items/1", "/items/x", "/nowhere", "/stats"):
            await client.get(path)
        await client.post("/profiler/start", headers=bearer(ADMIN_TOKEN))
        return (await client.get("/metrics")).content


def test_promtool_accepts_the_metrics_page() -> None:
    promtool = need_promtool()
    page = asyncio.run(_metrics_page())
    assert b"buttress_server_requests_total" in page
    assert b"buttress_system_process_rss_bytes" in page
    result = subprocess.run(
        [promtool, "check", "metrics"], input=page, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
