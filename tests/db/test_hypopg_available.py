"""hypopg is in the test database and the planner picks its hypothetical indexes (what index advice needs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.conftest import services_required

pytestmark = pytest.mark.postgres

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def hypopg_conn(database_url: str) -> Iterator[Conn]:
    """A connection to the test database, which must have the hypopg extension (``.ci/run`` creates it)."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'").fetchone() is None:
            reason = (
                "the hypopg extension is not in the test database: install postgresql-15-hypopg and"
                " CREATE EXTENSION hypopg (.ci/run does both)"
            )
            if services_required():
                pytest.fail(
                    reason + " and BUTTRESS_REQUIRE_SERVICES=1 turns the skip into a failure", pytrace=False
                )
            pytest.skip(reason)
        yield conn
        conn.execute("SELECT hypopg_reset()")


def _plan(conn: Conn, query: sql.Composed) -> str:
    return "\n".join(str(line) for (line,) in conn.execute(sql.SQL("EXPLAIN ") + query).fetchall())


def test_the_planner_chooses_a_hypothetical_index(hypopg_conn: Conn) -> None:
    name = f"hypo_{uuid.uuid4().hex[:12]}"
    table = sql.Identifier(name)
    query = sql.SQL("SELECT * FROM {} WHERE customer = 4242").format(table)
    hypopg_conn.execute(
        sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, customer int, note text)").format(table)
    )
    try:
        seed = "INSERT INTO {} SELECT n, n % 5000, 'row ' || n FROM generate_series(1, 20000) AS n"
        hypopg_conn.execute(sql.SQL(seed).format(table))
        hypopg_conn.execute(sql.SQL("ANALYZE {}").format(table))
        assert "Seq Scan" in _plan(hypopg_conn, query)

        create = sql.SQL("CREATE INDEX ON {} (customer)").format(table).as_string(hypopg_conn)
        row = hypopg_conn.execute("SELECT indexname FROM hypopg_create_index(%s)", (create,)).fetchone()
        assert row is not None
        index = str(row[0])
        assert index.startswith("<")
        assert f">btree_{name}_customer" in index

        plan = _plan(hypopg_conn, query)
        assert index in plan, plan
        assert "Seq Scan" not in plan
        # Hypothetical only: nothing was built, the catalog knows just the primary key's index.
        count = hypopg_conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = %s", (name,)
        ).fetchone()
        assert count == (1,)
    finally:
        hypopg_conn.execute(sql.SQL("DROP TABLE {}").format(table))
