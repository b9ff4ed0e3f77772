"""Read replicas: what the router costs per read and per recorded write, on a throwaway primary + standby.

Rows, each against plain SQLAlchemy sessions on the same servers, measured in the same run:

- a routed read (``db.session(read_only=True)``, no position to wait for) against a Session on the
  standby's own engine: the routing (breaker permit, cached lag, metrics) and the READ ONLY read session;
- a read in a consistency scope right after a write, whose position the standby has replayed (cached
  figure, no re-check) against the same plain standby read;
- a write recorded for read-your-writes (``db.session(key=...)``: transaction-id question, insert
  position after commit, the key's position kept in the memory cache) against a plain Session write.

Needs the PostgreSQL 15 server binaries (tests/_pg_cluster.py builds the pair); passwords are never used.
"""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from tests._pg_cluster import PgCluster

from benchmarks._harness import Row, Table, interleave, measure_ns
from buttress.cache import Cache
from buttress.config import DbSettings
from buttress.db import Database, consistent
from buttress.observe.metrics import MetricsRegistry

__all__ = ["run"]

ROUNDS: Final = 5
ANCHOR: Final = "plain SQLAlchemy Session"


def _measure(fn: object) -> float:
    return measure_ns(fn, repeat=3, min_time=0.2)  # type: ignore[arg-type]


def run() -> Table:
    with PgCluster() as cluster:
        metrics = MetricsRegistry()
        db = Database(
            cluster.primary_url,
            settings=DbSettings(replicas=[cluster.standby_url]),
            cache=Cache(),
            metrics=metrics,
        )
        standby = create_engine(  # pre-ping, as every buttress engine does
            cluster.standby_url.replace("postgresql://", "postgresql+psycopg://"), pool_pre_ping=True
        )
        table = f"bench_{uuid.uuid4().hex[:8]}"  # a fresh identifier of ours, never input
        with db.session() as session:
            session.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, value int)"))
            session.execute(text(f"INSERT INTO {table} VALUES (1, 0)"))  # noqa: S608
        cluster.wait_replayed()
        select = text(f"SELECT value FROM {table} WHERE id = 1")  # noqa: S608 - our own table name
        update = text(f"UPDATE {table} SET value = value + 1 WHERE id = 1")  # noqa: S608

        def routed_read() -> object:
            with db.session(read_only=True) as session:
                return session.execute(select).scalar()

        def plain_read() -> object:
            with Session(standby) as session, session.begin():
                return session.execute(select).scalar()

        scope = consistent()
        scope.__enter__()
        with db.session() as session:  # a position in the scope, replayed before the timing starts
            session.execute(update)
        cluster.wait_replayed()
        db.replicas.check()

        def scoped_read() -> object:
            with db.session(read_only=True) as session:
                return session.execute(select).scalar()

        reads = interleave(
            {
                "routed": lambda: _measure(routed_read),
                "scoped": lambda: _measure(scoped_read),
                "plain": lambda: _measure(plain_read),
            },
            ROUNDS,
        )
        scope.__exit__(None, None, None)

        def recorded_write() -> None:
            with db.session(key="user:1") as session:
                session.execute(update)

        def plain_write() -> None:
            with Session(db.engine) as session, session.begin():
                session.execute(update)

        writes = interleave(
            {"recorded": lambda: _measure(recorded_write), "plain": lambda: _measure(plain_write)}, ROUNDS
        )
        served = db.replicas.reads_metric.labels(replica="replica1").value
        with db.session() as session:
            session.execute(text(f"DROP TABLE {table}"))
        standby.dispose()
        db.close()
    return Table(
        "db replicas: router cost per read and per recorded write (PostgreSQL primary + hot standby)",
        [ANCHOR],
        [
            Row(
                "read routed to the replica (no position to wait for)",
                reads["routed"],
                {ANCHOR: reads["plain"]},
            ),
            Row(
                "read in a scope after a write the replica has replayed",
                reads["scoped"],
                {ANCHOR: reads["plain"]},
            ),
            Row("write recorded for read-your-writes (key)", writes["recorded"], {ANCHOR: writes["plain"]}),
        ],
        [
            "anchors: reads, a Session on the standby's own engine; the write, a Session on the primary",
            "the recorded write adds two round trips (transaction id, insert position) and a cache update",
            f"{served:.0f} reads were served by the replica during the run (proof the rows read the standby)",
        ],
    )
