"""Query tracking: what ``db.queries`` adds to a select by primary key, tracking on against off.

Three Databases open the same data (a SQLite file in a temp dir, and a PostgreSQL table in
``BUTTRESS_TEST_DATABASE_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``): buttress with tracking on,
the same with ``track_queries=False``, and the wave-2 anchor (shared/bench/wave2/track3.py): tracking off plus
a bare ``before/after_cursor_execute`` pair keeping count/total/max per SQL string, the least a tracker can
do. Each statement is ``select(Item.name).where(Item.id == pk)`` through a long-lived Session (one
transaction) or a Connection, pk cycling over 1,000 rows.

Timed in **CPU time of the calling thread** (``time.thread_time_ns``): tracking is client-side CPU work, and
on a shared 2-core machine the wall clock of a 60-250 µs statement swings by more than the 5 µs budget.
Candidates run in rotating order for ``ROUNDS`` rounds of a small ``BATCH`` of statements each, so a burst
of load from other processes lands on all three alike; the table shows the median per candidate, and the
notes the median of the per-round differences (tracking on minus off), the number the budget is about.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Integer, Text, event, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from benchmarks._harness import Row, Table, measure_ns, rotations
from buttress.config import DbSettings
from buttress.db import Database

__all__ = ["run"]

PG_URL: Final = os.environ.get("BUTTRESS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROWS: Final = 1_000
ROUNDS: Final = 200
BATCH: Final = {"sqlite": 100, "postgresql": 50}
BUDGET_NS: Final = 5_000.0
ON, OFF, ANCHOR = "tracking on", "tracking off", "wave-2 anchor: bare before/after_cursor_execute tracker"
TABLE: Final = f"bench_tracking_{uuid.uuid4().hex[:8]}"


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)


def _anchor_listeners(db: Database) -> None:
    """shared/bench/wave2/track3.py's tracker: count, total and max per SQL string."""
    stats: dict[str, list[int]] = {}

    @event.listens_for(db.engine, "before_cursor_execute")
    def before(  # noqa: PLR0917 - SQLAlchemy's listener signature
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        context._t0 = time.perf_counter_ns()

    @event.listens_for(db.engine, "after_cursor_execute")
    def after(  # noqa: PLR0917 - SQLAlchemy's listener signature
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        elapsed = time.perf_counter_ns() - context._t0
        entry = stats.get(statement)
        if entry is None:
            entry = stats[statement] = [0, 0, 0]
        entry[0] += 1
        entry[1] += elapsed
        entry[2] = max(entry[2], elapsed)


def _databases(url: str) -> dict[str, Database]:
    on = Database(url, settings=DbSettings(slow_query_ms=10_000))
    off = Database(url, settings=DbSettings(track_queries=False))
    anchor = Database(url, settings=DbSettings(track_queries=False))
    _anchor_listeners(anchor)
    with on.session() as session:
        Base.metadata.create_all(session.connection())
        session.execute(text(f"DELETE FROM {TABLE}"))  # noqa: S608 - our own table name
        session.execute(insert(Item), [{"id": i, "name": f"n{i}"} for i in range(1, ROWS + 1)])
    return {ON: on, OFF: off, ANCHOR: anchor}


def _batch_ns(run_one: Callable[[int], object], batch: int) -> float:
    start = time.thread_time_ns()
    for i in range(batch):
        run_one(i % ROWS + 1)
    return (time.thread_time_ns() - start) / batch


def _measure(dbs: dict[str, Database], path: str, batch: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in dbs}
    openers: dict[str, Any] = {}
    runners: dict[str, Callable[[int], object]] = {}
    for name, db in dbs.items():
        if path == "Session":
            session = openers[name] = Session(db.engine)
            runners[name] = _session_runner(session)
        else:
            connection = openers[name] = db.engine.connect()
            runners[name] = _connection_runner(connection)
        _batch_ns(runners[name], batch * 5)  # warm: compiled-statement cache, pool, fingerprints
    try:
        for name in rotations(list(dbs), ROUNDS * len(dbs)):
            samples[name].append(_batch_ns(runners[name], batch))
    finally:
        for opened in openers.values():
            opened.close()
    return samples


def _session_runner(session: Session) -> Callable[[int], object]:
    def one(pk: int) -> object:
        return session.execute(select(Item.name).where(Item.id == pk)).scalar_one()

    return one


def _connection_runner(connection: Any) -> Callable[[int], object]:
    def one(pk: int) -> object:
        return connection.execute(select(Item.name).where(Item.id == pk)).scalar_one()

    return one


def _added(samples: dict[str, list[float]], name: str) -> float:
    """Median of the per-round differences between ``name`` and tracking off."""
    return statistics.median(a - b for a, b in zip(samples[name], samples[OFF], strict=True))


class _NoOpCursor:
    """A cursor whose execute does nothing: what is left to time is the listener itself."""

    rowcount = -1

    def execute(self, statement: str, parameters: Any = None) -> None:
        return None


def _listener_row() -> Row:
    """The tracking listener alone against the anchor's two listeners, around a no-op execute."""
    db = Database("sqlite://", settings=DbSettings(slow_query_ms=10_000))
    try:
        listener = db.queries._listener(db.engine.dialect.do_execute)
        statement = f"SELECT name FROM {TABLE} WHERE id = ?"  # noqa: S608 - our own table name
        cursor, parameters = _NoOpCursor(), (1,)
        stats: dict[str, list[int]] = {}

        class Context:
            _t0 = 0
            execution_options: dict[str, object] = {}  # noqa: RUF012 - a stand-in, never mutated

        context = Context()

        def anchor() -> None:
            context._t0 = time.perf_counter_ns()
            cursor.execute(statement, parameters)
            elapsed = time.perf_counter_ns() - context._t0
            entry = stats.get(statement)
            if entry is None:
                entry = stats[statement] = [0, 0, 0]
            entry[0] += 1
            entry[1] += elapsed
            entry[2] = max(entry[2], elapsed)

        def bare() -> None:
            cursor.execute(statement, parameters)

        listener(cursor, statement, parameters, context)
        return Row(
            "the tracking listener alone, around a no-op cursor (ns per call)",
            measure_ns(lambda: listener(cursor, statement, parameters, context)),
            {OFF: measure_ns(bare), ANCHOR: measure_ns(anchor)},
        )
    finally:
        db.close()


def run() -> Table:
    rows: list[Row] = [_listener_row()]
    notes: list[str] = [
        (
            "First row: the listener's own cost in a tight loop (wall time, harness median), against a bare "
            "execute call and the anchor's before/after bodies inlined; what a statement pays in a real "
            "SQLAlchemy call is higher (cold caches between statements), see the rows below."
        )
    ]
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"SQLite file": f"sqlite:///{Path(tmp) / 'bench.db'}", "PostgreSQL": PG_URL}
        for label, url in backends.items():
            dbs = _databases(url)
            try:
                batch = BATCH[dbs[ON].backend]
                for path in ("Session", "Connection"):
                    samples = _measure(dbs, path, batch)
                    medians = {name: statistics.median(values) for name, values in samples.items()}
                    operation = f"{label}: select by PK through a {path}"
                    rows.append(Row(operation, medians[ON], {OFF: medians[OFF], ANCHOR: medians[ANCHOR]}))
                    added, anchor_added = _added(samples, ON), _added(samples, ANCHOR)
                    verdict = "within" if added <= BUDGET_NS else "OVER"
                    notes.append(
                        f"{operation}: tracking adds {added / 1e3:.2f} µs/statement "
                        f"({verdict} the 5 µs budget); "
                        f"the bare anchor tracker adds {anchor_added / 1e3:.2f} µs"
                    )
            finally:
                with dbs[ON].session() as session:
                    session.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
                for db in dbs.values():
                    db.close()
    notes.append(
        "CPU time of the calling thread per statement, median of "
        f"{ROUNDS} rotated rounds ({BATCH['sqlite']} statements per round on SQLite, "
        f"{BATCH['postgresql']} on PostgreSQL); 'adds' is the median of per-round differences against "
        "tracking off."
    )
    return Table(
        "Query tracking: select by primary key, tracking on vs off (CPU µs per statement)",
        [OFF, ANCHOR],
        rows,
        notes,
    )
