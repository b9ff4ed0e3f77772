"""Keyset pages: page 1 against page 1,000 (limit 20) of a 1M-row table, OFFSET pagination beside it.

A table of ``ROWS`` rows (``id`` primary key, ``score`` with ties, a text payload), made in the database
itself (``generate_series`` on PostgreSQL, a recursive CTE on SQLite), indexed on ``(score, id)``. The
candidates, timed in the same run and interleaved round by round:

- buttress: ``db.paginate(select(t), order_by=[t.c.score], after=cursor, limit=20)``, the cursor of
  page 1,000 found by walking the 999 pages before it;
- anchor: OFFSET pagination, ``select(t).order_by(t.c.score, t.c.id).limit(20).offset(n)``, each in a
  ``db.session()`` as buttress's page is;
- anchor: a hand-written row-value keyset query, ``WHERE (score, id) > (:s, :i)``, the best case a
  NOT NULL ascending ordering allows (what buttress writes instead is NULL-safe and direction-safe).

Budget: buttress's page 1,000 ≤ 1.5x its page 1. PostgreSQL is ``BUTTRESS_TEST_DATABASE_URL`` (default the
local ``test`` database); its table has a unique name and is dropped afterwards. ``BENCH_KEYSET_ROWS``
shrinks the table for a quick run.
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

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, select, text, tuple_
from sqlalchemy import Table as SqlTable

from benchmarks._harness import Row, Table, measure_ns, rotations
from buttress.config import DbSettings
from buttress.db import Database

__all__ = ["run"]

DATABASE_URL: Final = os.environ.get(
    "BUTTRESS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ROWS: Final = int(os.environ.get("BENCH_KEYSET_ROWS", "1000000"))
SCORES: Final = max(1, ROWS // 100)
"""Distinct score values: about 100 rows share each, so the tiebreaker matters."""
LIMIT: Final = 20
DEEP: Final = 1000
ROUNDS: Final = 7
BUDGET: Final = 1.5
KEY: Final = "benchmark-cursor-key-0123456789abcdef"
OFFSET: Final = "OFFSET pagination (SQLAlchemy)"
ROW_VALUE: Final = "hand-written (score, id) > row value"


def _fill(db: Database, name: str) -> SqlTable:
    table = SqlTable(
        name,
        MetaData(),
        Column("id", BigInteger, primary_key=True),
        Column("score", Integer, nullable=False),
        Column("payload", String(40), nullable=False),
    )
    table.create(db.engine)
    # ~100 ties per score value, in an order unrelated to id
    if db.backend == "postgresql":
        fill = (
            f"INSERT INTO {name} (id, score, payload) "  # noqa: S608 - our own table name and numbers
            f"SELECT g, (g::bigint * 7919) % {SCORES}, md5(g::text) FROM generate_series(1, {ROWS}) AS g"
        )
    else:
        fill = (
            f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {ROWS}) "  # noqa: S608
            f"INSERT INTO {name} (id, score, payload) "
            f"SELECT x, (x * 7919) % {SCORES}, hex(x) FROM g"
        )
    with db.session() as session:
        session.execute(text(fill))
        session.execute(text(f"CREATE INDEX ix_{name}_score_id ON {name} (score, id)"))
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text(f"ANALYZE {name}"))
    return table


def _measures(db: Database, table: SqlTable) -> tuple[dict[str, Callable[[], float]], dict[str, str]]:
    """Each candidate's timer (ns per page) and the checks that they all read the same rows."""
    order = [table.c.score]
    cursor: str | None = None
    for _ in range(DEEP - 1):
        cursor = db.paginate(select(table), order_by=order, after=cursor, limit=LIMIT).next
    deep_page = db.paginate(select(table), order_by=order, after=cursor, limit=LIMIT)
    boundary = db.paginate(select(table), order_by=order, before=deep_page.previous, limit=1).items[0]

    def offset(page: int) -> list[Any]:
        stmt = select(table).order_by(table.c.score, table.c.id).limit(LIMIT).offset((page - 1) * LIMIT)
        with db.session() as session:
            return list(session.execute(stmt).all())

    def row_value(after: tuple[int, int] | None) -> list[Any]:
        stmt = select(table).order_by(table.c.score, table.c.id).limit(LIMIT)
        if after is not None:
            stmt = stmt.where(tuple_(table.c.score, table.c.id) > tuple_(*after))
        with db.session() as session:
            return list(session.execute(stmt).all())

    deep_ids = [item["id"] for item in deep_page.items]
    assert [r.id for r in offset(DEEP)] == deep_ids, "OFFSET and keyset disagree on page 1,000"
    assert [r.id for r in row_value((boundary["score"], boundary["id"]))] == deep_ids

    def keyset(after: str | None) -> Callable[[], object]:
        return lambda: db.paginate(select(table), order_by=order, after=after, limit=LIMIT)

    def timed(fn: Callable[[], object]) -> Callable[[], float]:
        return lambda: measure_ns(fn, repeat=3, min_time=0.05)

    measures = {
        "keyset 1": timed(keyset(None)),
        "keyset deep": timed(keyset(cursor)),
        "offset 1": timed(lambda: offset(1)),
        "offset deep": timed(lambda: offset(DEEP)),
        "row value 1": timed(lambda: row_value(None)),
        "row value deep": timed(lambda: row_value((boundary["score"], boundary["id"]))),
    }
    return measures, {"rows": str(ROWS)}


def _table_for(db: Database, label: str) -> tuple[list[Row], list[str]]:
    name = f"bench_keyset_{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    try:
        table = _fill(db, name)
        filled = time.perf_counter() - started
        measures, _ = _measures(db, table)
        samples: dict[str, list[float]] = {key: [] for key in measures}
        for key in rotations(list(measures), ROUNDS):
            samples[key].append(measures[key]())
        ns = {key: statistics.median(values) for key, values in samples.items()}
    finally:
        with db.session() as session:
            session.execute(text(f"DROP TABLE IF EXISTS {name}"))
    rows = [
        Row(f"{label}: page 1", ns["keyset 1"], {OFFSET: ns["offset 1"], ROW_VALUE: ns["row value 1"]}),
        Row(
            f"{label}: page {DEEP:,}",
            ns["keyset deep"],
            {OFFSET: ns["offset deep"], ROW_VALUE: ns["row value deep"]},
        ),
    ]
    keyset_ratio = ns["keyset deep"] / ns["keyset 1"]
    verdict = "within" if keyset_ratio <= BUDGET else "OVER"
    offset_ratio = ns["offset deep"] / ns["offset 1"]
    row_value_ratio = ns["row value deep"] / ns["row value 1"]
    note = (
        f"{label}: {ROWS:,} rows filled and indexed in {filled:.1f} s; page {DEEP:,} / page 1: buttress "
        f"keyset {keyset_ratio:.2f}x ({verdict} the {BUDGET}x budget), OFFSET {offset_ratio:.2f}x, "
        f"hand-written row value {row_value_ratio:.2f}x"
    )
    return rows, [note]


def run() -> Table:
    rows: list[Row] = []
    notes: list[str] = []
    settings = DbSettings(cursor_key=KEY, statement_timeout=120)
    for label, url in (
        ("PostgreSQL", DATABASE_URL),
        ("SQLite", f"sqlite:///{Path(tempfile.mkdtemp()) / 'keyset.db'}"),
    ):
        db = Database(url, settings=settings)
        try:
            more_rows, more_notes = _table_for(db, label)
        finally:
            db.close()
        rows += more_rows
        notes += more_notes
    notes.append(
        f"limit {LIMIT}, ordered by score (about 100 rows per value) then id, index on (score, id); times "
        "per page include a session, building the statement, the round trip and, for buttress, the cursors"
    )
    return Table(
        title=f"Keyset pages: page 1 vs page {DEEP:,} of {ROWS:,} rows (sync)",
        anchors=[OFFSET, ROW_VALUE],
        rows=rows,
        notes=notes,
    )


if __name__ == "__main__":
    print(run().to_markdown())
