"""An application's own health checks on the registry the ops server serves (install and create_app)."""

from __future__ import annotations

from fastapi import FastAPI

from buttress.observe.health import CheckResult
from buttress.server import Ops, create_app, install

from .conftest import client_for, make_settings


async def test_a_check_added_after_install_is_run_by_every_probe_of_its_group() -> None:
    app = FastAPI()
    ops = install(app, make_settings())
    assert ops is app.state.buttress
    async with client_for(app) as client:
        assert "orders_queue" not in (await client.get("/ops/health/ready")).json().get("checks", {})

        @ops.health.check("orders_queue")
        def orders_queue() -> CheckResult:
            return CheckResult("fail", "the queue's database is read-only")

        ready = await client.get("/ops/health/ready")
        live = await client.get("/ops/health/live")
    assert ready.status_code == 503  # critical by default: out of the load balancer
    assert ready.json()["checks"]["orders_queue"][0]["output"] == "the queue's database is read-only"
    assert live.status_code == 200  # readiness by default, so liveness does not run it
    assert "orders_queue" not in live.json()["checks"]


async def test_create_app_exposes_the_same_registry_beside_buttresss_checks() -> None:
    app = create_app(make_settings())
    ops: Ops = app.state.buttress
    ops.health.add("payments", lambda: True, critical=False, groups=("readiness", "liveness"))
    async with client_for(app) as client:
        live = (await client.get("/health/live")).json()
        ready = (await client.get("/health/ready")).json()
    assert live["checks"]["payments"][0]["status"] == "pass"
    assert {"payments", "system", "cache"} <= set(ready["checks"])
