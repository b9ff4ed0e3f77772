"""The database on the ops server (`GET /db`, `GET /db/advice`) and `buttress db stats|advise` reading them.

An app of the user's with the routes under /ops, its database the settings' SQLite file: a request that
loops over orders (an N+1 inside the request's scope), a statement slow by the settings' threshold, then
the report, the advice and the CLI, with a secret parameter value that must appear nowhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from typer.testing import CliRunner

from buttress.cli import app as cli_app
from buttress.config import reset_settings
from buttress.container import get_container
from buttress.db import Database
from buttress.server import install

from .conftest import client_for
from .test_live_server import serving

SECRET = "tok-0123456789-secret"


@pytest.fixture
def orders_app(isolated_settings: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    monkeypatch.setenv("BUTTRESS_DB__SLOW_QUERY_MS", "0")  # every statement is "slow": the log fills
    reset_settings()
    db = get_container().resolve(Database)
    with db.session() as session:
        session.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INT, token TEXT)"))
        session.execute(
            text("INSERT INTO orders (customer_id, token) VALUES (:c, :t)"),
            [{"c": n % 300, "t": SECRET} for n in range(3000)],
        )
    app = FastAPI()

    @app.get("/customers/orders")
    def orders() -> dict[str, int]:
        with db.session() as session:
            total = 0
            for customer in range(12):  # one query per customer: the N+1 the detector must name
                rows = session.execute(text("SELECT id FROM orders WHERE customer_id = :c"), {"c": customer})
                total += len(rows.all())
            session.execute(text("SELECT id FROM orders WHERE token = :t"), {"t": SECRET}).all()
        return {"orders": total}

    install(app)
    return app


async def test_the_db_report_names_the_n_plus_one_and_never_a_parameter_value(orders_app: FastAPI) -> None:
    async with client_for(orders_app) as client:
        assert (await client.get("/customers/orders")).json() == {"orders": 120}
        answer = await client.get("/ops/db")
    assert answer.status_code == 200
    report = answer.json()
    assert report["in_use"] is True
    assert report["backend"] == "sqlite"
    assert report["pools"]["sync"]["checked_out"] == 0
    by_sql = {row["sql"]: row for row in report["statements"]}
    assert by_sql["SELECT id FROM orders WHERE customer_id = $1"]["calls"] == 12
    [incident] = report["n_plus_one"]
    assert incident["scope"] == "GET /customers/orders"  # the request's own scope, opened by the middleware
    assert incident["sql"] == "SELECT id FROM orders WHERE customer_id = $1"
    assert incident["site"].endswith(f"{Path(__file__).name}:{_line_of('rows = session.execute(')}")
    assert any(row["parameters"] == ["str"] for row in report["slow"])  # SQLite binds by position
    assert SECRET not in answer.text


async def test_the_advice_route_advises_the_tracked_workload_and_keeps_its_answer(
    orders_app: FastAPI,
) -> None:
    async with client_for(orders_app) as client:
        await client.get("/customers/orders")
        first = await client.get("/ops/db/advice")
        again = await client.get("/ops/db/advice")
    assert first.status_code == 200
    report = first.json()
    assert {tuple(row["columns"]) for row in report["indexes"]} >= {("customer_id",), ("token",)}
    assert all(row["verified"] is False for row in report["indexes"])  # SQLite: said to be unverified
    assert again.json() == report  # kept for a while: planning is not redone per request
    assert SECRET not in first.text


async def test_without_a_database_the_report_says_so_and_creates_nothing(
    isolated_settings: None, tmp_path: Path
) -> None:
    app = FastAPI()
    install(app)
    async with client_for(app) as client:
        report = (await client.get("/ops/db")).json()
        advice = (await client.get("/ops/db/advice")).json()
    assert report["in_use"] is False
    assert advice["in_use"] is False
    assert not (tmp_path / "buttress.db").exists()


def test_the_cli_prints_the_report_and_the_advice_of_a_running_service(orders_app: FastAPI) -> None:
    with serving(orders_app) as base:
        import httpx

        assert httpx.get(f"{base}/customers/orders").status_code == 200
        runner = CliRunner()
        stats = runner.invoke(cli_app, ["db", "stats", "--url", base])
        advice = runner.invoke(cli_app, ["db", "advise", "--url", base, "--json"])
    assert stats.exit_code == 0, stats.stdout
    assert "statements by total time" in stats.stdout
    assert "N+1 incidents" in stats.stdout
    assert "GET /customers/orders" in stats.stdout
    assert advice.exit_code == 0, advice.stdout
    assert "ix_orders_customer_id" in json.loads(advice.stdout)["text"]
    assert SECRET not in stats.stdout + advice.stdout


def _line_of(fragment: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if fragment in line)
