"""On the real PostgreSQL: the tracked lookup by birth date gets advice verified with hypopg; and reads
through the replica router on a real primary and hot standby (``tests/_pg_cluster.py``), the standby then
killed: reads fall back to the primary."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import httpx
import psycopg
import pytest
from sqlalchemy import make_url, text
from tests._pg_cluster import PgCluster, missing_reason
from tests.conftest import services_required

from examples.astrology.app import create_app
from examples.astrology.store import database, save_pending

from .conftest import serving, wait_for


@pytest.fixture
def own_database(database_url: str) -> Iterator[str]:
    """A database of the test's own on the shared server, with hypopg, dropped afterwards: a table another
    run left in the shared database's ``public`` schema can neither hide the app's nor be touched."""
    name = f"astro_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    own = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        with psycopg.connect(own, autocommit=True) as conn:
            conn.execute(b"CREATE EXTENSION IF NOT EXISTS hypopg")
        yield own
    finally:
        from buttress.container import reset_container

        reset_container()  # close the pool before dropping the database it is connected to
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)".encode())


@pytest.mark.postgres
def test_the_tracked_lookup_by_birth_date_gets_verified_index_advice(
    configure: Callable[..., None], own_database: str
) -> None:
    configure(BUTTRESS_DATABASE_URL=own_database)
    with serving(create_app()) as http:
        db = database()
        start = date(1960, 1, 1)
        save_pending(db, [(f"p{n}", start + timedelta(days=n % 4000), "aries") for n in range(8000)])
        with db.session() as session:
            session.execute(text("ANALYZE astro_readings"))
        for _ in range(3):
            assert len(http.get("/readings", params={"birth_date": "1961-01-01"}).json()) == 2
        statements = http.get("/ops/db").json()["statements"]
        [lookup] = [st for st in statements if "astro_readings.birth_date =" in st["sql"]]
        assert lookup["calls"] == 3
        advice = http.get("/ops/db/advice").json()
    assert advice["hypopg"] is True
    [index] = [i for i in advice["indexes"] if i["table"] == "astro_readings"]
    ddl = "CREATE INDEX CONCURRENTLY ix_astro_readings_birth_date ON public.astro_readings (birth_date)"
    assert index["ddl"] == ddl
    assert index["verified"] is True
    assert index["ratio"] < 0.5  # the planner's cost at least halves with the index


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    reason = missing_reason()
    if reason is not None:
        if services_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with PgCluster() as started:
        yield started


def _replica_reads(http: httpx.Client) -> dict[str, float]:
    found = re.findall(
        r'buttress_db_replica_reads_total\{replica="(\w+)"\} ([0-9.]+)', http.get("/ops/metrics").text
    )
    return {name: float(value) for name, value in found}


def test_reads_go_to_the_standby_writes_to_the_primary_and_reads_survive_its_death(
    configure: Callable[..., None], cluster: PgCluster
) -> None:
    configure(
        BUTTRESS_DATABASE_URL=cluster.primary_url, BUTTRESS_DB__REPLICAS=json.dumps([cluster.standby_url])
    )
    with serving(create_app()) as http:
        created = http.post("/batches", json={"people": [{"name": "Ada", "birth_date": "1990-04-17"}]})
        [reading] = created.json()["readings"]  # written on the primary: the standby cannot take writes
        cluster.wait_replayed()
        before = _replica_reads(http)
        assert http.get(f"/readings/{reading}").json()["name"] == "Ada"
        after = _replica_reads(http)
        assert after["replica1"] == before.get("replica1", 0) + 1
        assert after.get("primary", 0) == before.get("primary", 0)

        cluster.kill_standby()
        for _ in range(4):  # every read still answers, from the primary
            assert http.get(f"/readings/{reading}").json()["name"] == "Ada"
        assert _replica_reads(http)["primary"] >= after.get("primary", 0) + 4
        [replica] = wait_for(lambda: [r for r in http.get("/ops/db").json()["replicas"] if not r["healthy"]])
        assert replica["name"] == "replica1"
        assert replica["breaker"] == "open"
