"""Query tracking on SQLite and PostgreSQL, sync and async: fingerprints, stats, slow log, N+1, metrics."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import ForeignKey, Integer, Text, select, text
from sqlalchemy.ext.asyncio import AsyncAttrs, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from buttress.clock import FakeClock
from buttress.db import QueryTracker, StatementStats, fingerprint, normalise, query_scope
from buttress.errors import ValidationError
from buttress.events import Event, EventBus, create_event_bus
from buttress.observe.metrics import get_metrics
from tests.db._subject import KINDS, MODES, Subject, open_database

SECRET = "s3cret-Tok3n-4f9a"
THRESHOLD = 5


class StepTimer:
    """A nanosecond timer whose every start/stop pair is ``step`` apart: durations chosen, no sleeping."""

    def __init__(self, step_ns: int = 1_000) -> None:
        self.now = 0
        self.step = step_ns
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls % 2 == 0:
            self.now += self.step
        return self.now


def _subject(request: pytest.FixtureRequest, tmp_path: Path, kind: str, mode: str, **options: Any) -> Subject:
    db = open_database(kind, tmp_path, request, n_plus_one_threshold=THRESHOLD, **options)
    return Subject(kind, mode, db, asyncio.new_event_loop())


@pytest.fixture(params=[(k, m) for k in KINDS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    made = _subject(request, tmp_path, *request.param)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def bus() -> Iterator[EventBus]:
    made = create_event_bus()
    try:
        yield made
    finally:
        made.close()


def collect(bus: EventBus, pattern: str) -> list[Event]:
    got: list[Event] = []
    bus.subscribe(pattern, got.append)
    return got


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        threading.Event().wait(0.01)


def make_table(subject: Subject, rows: int = 20) -> str:
    table = subject.table("items")
    subject.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    values = ", ".join(f"({i}, 'n{i}')" for i in range(1, rows + 1))
    subject.execute(f"INSERT INTO {table} (id, name) VALUES {values}")
    return table


def select_each(subject: Subject, sql: str, values: list[Any], *, key: str = "id") -> None:
    """Run ``sql`` once per value in one session (one line: one call site)."""
    if subject.mode == "sync":
        with subject.db.session() as session:
            for value in values:
                session.execute(text(sql), {key: value}).all()
        return

    async def run() -> None:
        async with subject.db.asession() as session:
            for value in values:
                (await session.execute(text(sql), {key: value})).all()

    subject.run(run())


def stats_of(subject: Subject, sql: str) -> StatementStats:
    stats = subject.db.queries.get(fingerprint(sql).id)
    assert stats is not None, subject.db.queries.top(50)
    return stats


# -- fingerprints -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "normalised"),
    [
        ("select a from t where id = 1", "SELECT a FROM t WHERE id = $1"),
        ("SELECT a\n  FROM t   WHERE id=?", "SELECT a FROM t WHERE id = $1"),
        ("select a from t where name = 'it''s' and n > -5", "SELECT a FROM t WHERE name = $1 AND n > $2"),
        ("select a - 1 from t", "SELECT a - $1 FROM t"),
        ("select a from t where id in (1, 2, 3)", "SELECT a FROM t WHERE id IN ($1 /*, ... */)"),
        ("SELECT a FROM t WHERE id IN (%(id_1_1)s)", "SELECT a FROM t WHERE id IN ($1 /*, ... */)"),
        ("insert into t (a, b) values (?, ?), (?, ?), (?, ?)", "INSERT INTO t(a, b) VALUES ($1, $2)"),
        ("INSERT INTO t (a, b) VALUES (%(a)s, %(b)s)", "INSERT INTO t(a, b) VALUES ($1, $2)"),
        ("select x::int, count(*) from t -- note", "SELECT x::int, count(*) FROM t"),
        ("select /* hint */ 1.5e3, $$dollar$$, E'esc'", "SELECT $1, $2, $3"),
        (
            "select a from t where ok = true and b is not false",
            "SELECT a FROM t WHERE ok = $1 AND b IS NOT FALSE",
        ),
        ("select a from t where b is null limit :n", "SELECT a FROM t WHERE b IS NULL LIMIT $1"),
        ('SELECT "Mixed"."Case" FROM "Mixed"', 'SELECT "Mixed"."Case" FROM "Mixed"'),
        ("with x as (select 1) delete from t", "WITH x AS (SELECT $1) DELETE FROM t"),
    ],
)
def test_normalise(sql: str, normalised: str) -> None:
    assert normalise(sql) == normalised


def test_fingerprint_ids_are_stable_short_and_shared_by_one_shape() -> None:
    one = fingerprint("select a from t where id in (1, 2)")
    many = fingerprint("SELECT a FROM t WHERE id IN (7, 8, 9, 10)")
    assert one.id == many.id
    assert re.fullmatch(r"[0-9a-f]{16}", one.id)
    assert one.operation == "select"
    assert fingerprint("select b from t").id != one.id
    assert fingerprint("with x as (select 1) update t set a = 1").operation == "update"
    assert fingerprint("CREATE TABLE t (a int)").operation == "other"


# -- statistics ---------------------------------------------------------------------------------------


def test_statements_are_counted_with_rows(subject: Subject) -> None:
    table = make_table(subject)
    sql = f"SELECT name FROM {table} WHERE id = :id"
    select_each(subject, sql, [1, 2, 3, 99])
    stats = stats_of(subject, sql)
    assert stats.calls == 4
    assert stats.sql == f"SELECT name FROM {table} WHERE id = $1"
    assert stats.operation == "select"
    assert 0 < stats.p50_seconds <= stats.p95_seconds <= stats.p99_seconds <= stats.max_seconds
    assert stats.total_seconds >= stats.max_seconds
    if subject.kind == "postgresql":
        assert stats.rows == 3  # psycopg knows a SELECT's rows; sqlite3 does not before they are fetched
    update = f"UPDATE {table} SET name = 'x' WHERE id <= 5"
    subject.execute(update)
    assert stats_of(subject, update).rows == 5
    assert stats_of(subject, f"INSERT INTO {table} (id, name) VALUES (1, 'a'), (2, 'b')").rows == 20


def test_percentiles_match_known_durations(subject: Subject) -> None:
    table = make_table(subject)
    timer = StepTimer()
    subject.db.queries.timer = timer
    sql = f"SELECT name FROM {table} WHERE id = :id"
    durations_ms = list(range(1, 101))

    def run_all() -> None:
        if subject.mode == "sync":
            with subject.db.session() as session:
                for ms in durations_ms:
                    timer.step = ms * 1_000_000
                    session.execute(text(sql), {"id": 1}).all()
            return

        async def run() -> None:
            async with subject.db.asession() as session:
                for ms in durations_ms:
                    timer.step = ms * 1_000_000
                    (await session.execute(text(sql), {"id": 1})).all()

        subject.run(run())

    run_all()
    stats = stats_of(subject, sql)
    assert stats.calls == 100
    assert stats.total_seconds == pytest.approx(sum(durations_ms) / 1000)
    assert stats.mean_seconds == pytest.approx(0.0505)
    assert stats.max_seconds == pytest.approx(0.100)
    # rank floor(q * (n - 1)) of 1..100 ms, within the sketch's 1 %
    assert stats.p50_seconds == pytest.approx(0.050, rel=0.01)
    assert stats.p95_seconds == pytest.approx(0.095, rel=0.01)
    assert stats.p99_seconds == pytest.approx(0.099, rel=0.01)
    top = subject.db.queries.top(1, by="p95")
    assert top[0].fingerprint == stats.fingerprint
    assert subject.db.queries.top(1, by="mean")[0].fingerprint == stats.fingerprint


def test_top_validates_its_arguments(subject: Subject) -> None:
    with pytest.raises(ValidationError, match="by must be one of"):
        subject.db.queries.top(by="rows")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="n must be a positive int"):
        subject.db.queries.top(0)
    with pytest.raises(ValidationError, match="scope name"):
        subject.db.queries.scope("")


def test_fingerprints_beyond_the_cap_count_into_one_overflow_entry(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for kind in KINDS:
        (tmp_path / kind).mkdir()
        subject = _subject(request, tmp_path / kind, kind, "sync", max_fingerprints=3)
        try:
            for n in range(10):
                subject.execute(f"SELECT {n} AS c{n}")  # ten shapes (the alias differs)
            tracked = subject.db.queries.all()
            assert len(tracked) == 4
            overflow = subject.db.queries.get("overflow")
            assert overflow is not None
            assert sum(s.calls for s in tracked) >= 10
            assert overflow.calls >= 7
            assert subject.db.queries.sample("overflow") is None
        finally:
            subject.close()


# -- slow log -----------------------------------------------------------------------------------------


def test_slow_log_has_the_plan_and_never_the_values(
    subject: Subject, bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    table = make_table(subject)
    events = collect(bus, "db.slow_statement")
    tracker = subject.db.queries
    tracker.events = bus
    tracker.timer = StepTimer(150_000_000)  # every statement takes 150 ms
    sql = f"SELECT id FROM {table} WHERE name = :name"
    with caplog.at_level("DEBUG"):
        select_each(subject, sql, [SECRET], key="name")
    slow = [entry for entry in tracker.slow() if entry.fingerprint == fingerprint(sql).id]
    assert len(slow) == 1
    entry = slow[0]
    assert entry.seconds == pytest.approx(0.150)
    assert entry.parameters == {"name": "str"} if subject.kind == "postgresql" else ["str"]
    assert entry.site.startswith(__file__)
    assert entry.site.rsplit(":", 1)[1].isdigit()
    assert entry.failed is False
    if subject.kind == "postgresql":
        assert entry.plan[0]["Plan"]["Node Type"] == "Seq Scan"
    else:
        assert "SCAN" in entry.plan[0]["detail"]
    wait_for(lambda: any(e.payload["fingerprint"] == entry.fingerprint for e in events))
    sample = tracker.sample(entry.fingerprint)
    assert sample is not None
    assert SECRET in str(sample.parameters)
    renderings = [
        repr(tracker.slow()),
        repr(tracker.top(50)),
        repr(sample),
        repr([e.payload for e in events]),
        "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("buttress")),
        get_metrics().render_prometheus().decode(),
    ]
    for rendering in renderings:
        assert SECRET not in rendering


def test_explaining_leaves_the_callers_transaction_alone(subject: Subject) -> None:
    table = make_table(subject)
    subject.db.queries.timer = StepTimer(150_000_000)

    def unit(session: Session) -> None:
        session.execute(text(f"SELECT name FROM {table} WHERE id = :id"), {"id": 1}).all()
        session.execute(text(f"INSERT INTO {table} (id, name) VALUES (100, 'kept')"))

    async def aunit(session: AsyncSession) -> None:
        (await session.execute(text(f"SELECT name FROM {table} WHERE id = :id"), {"id": 1})).all()
        await session.execute(text(f"INSERT INTO {table} (id, name) VALUES (100, 'kept')"))

    subject.transaction(unit, aunit)
    assert subject.execute(f"SELECT name FROM {table} WHERE id = 100") == [("kept",)]
    assert any(entry.plan for entry in subject.db.queries.slow())


def test_a_failed_statement_is_timed_and_not_explained(subject: Subject) -> None:
    table = make_table(subject)
    subject.db.queries.timer = StepTimer(150_000_000)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the backends raise different errors
        subject.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'duplicate')")
    failed = [entry for entry in subject.db.queries.slow() if entry.failed]
    assert len(failed) == 1
    assert failed[0].plan is None
    stats = stats_of(subject, f"INSERT INTO {table} (id, name) VALUES (1, 'x')")
    assert stats.errors == 1


# -- N+1 ----------------------------------------------------------------------------------------------


def test_a_loop_of_selects_in_a_scope_is_one_incident(subject: Subject, bus: EventBus) -> None:
    table = make_table(subject)
    events = collect(bus, "db.n_plus_one")
    subject.db.queries.events = bus
    sql = f"SELECT name FROM {table} WHERE id = :id"
    with query_scope("GET /items"):
        select_each(subject, sql, list(range(1, 13)))
    incidents = subject.db.queries.incidents()
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident.scope == "GET /items"
    assert incident.fingerprint == fingerprint(sql).id
    assert incident.sql == f"SELECT name FROM {table} WHERE id = $1"
    assert incident.count == 12
    path, line = incident.site.rsplit(":", 1)
    assert path == __file__
    assert "session.execute(text(sql), {key: value})" in Path(path).read_text().splitlines()[int(line) - 1]
    wait_for(lambda: len(events) == 1)
    assert events[0].payload["site"] == incident.site


def test_a_container_scope_is_a_query_scope_with_nothing_to_open(subject: Subject) -> None:
    """A request under the ops middleware, or a job, is a unit of work for the detector by itself."""
    from buttress.container import Container

    table = make_table(subject)
    sql = f"SELECT name FROM {table} WHERE id = :id"
    container = Container()
    with container.scope("GET /items/{id}"):
        select_each(subject, sql, list(range(1, 13)))
    with container.scope("GET /other"):  # a second unit starts its own count, below the threshold
        select_each(subject, sql, list(range(1, 5)))
    incidents = subject.db.queries.incidents()
    assert [i.scope for i in incidents] == ["GET /items/{id}"], incidents
    [incident] = incidents
    assert incident.scope == "GET /items/{id}"
    assert incident.count >= 5


def test_statements_that_are_not_n_plus_one_are_never_flagged(subject: Subject) -> None:
    table = make_table(subject)
    sql = f"SELECT name FROM {table} WHERE id = :id"
    for n in range(4):  # the same count spread over several scopes
        with query_scope(f"job {n}"):
            select_each(subject, sql, [1, 2, 3])
    select_each(subject, sql, list(range(1, 13)))  # outside any scope
    with query_scope("below the threshold"):
        select_each(subject, sql, list(range(1, THRESHOLD)))
    with query_scope("one batch"):
        select_each(subject, f"SELECT name FROM {table} WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8, 9)", [0])
    with query_scope("the same parameters"):
        select_each(subject, sql, [1] * 12)
    assert subject.db.queries.incidents() == []


@pytest.fixture(params=KINDS)
def async_subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    """Each database, async only: what concerns tasks."""
    made = _subject(request, tmp_path, request.param, "async")
    try:
        yield made
    finally:
        made.close()


def test_scopes_are_per_task(async_subject: Subject) -> None:
    subject = async_subject
    table = make_table(subject)
    sql = f"SELECT name FROM {table} WHERE id = :id"

    async def job(n: int) -> None:
        async with subject.db.queries.scope(f"task {n}"), subject.db.asession() as session:
            for i in range(1, THRESHOLD):
                (await session.execute(text(sql), {"id": i})).all()
                await asyncio.sleep(0)

    async def both() -> None:
        await asyncio.gather(job(1), job(2))

    subject.run(both())
    assert subject.db.queries.incidents() == []


def test_lazy_loading_in_a_loop_is_found(subject: Subject) -> None:
    parents, children = subject.table("parent"), subject.table("child")

    class Base(AsyncAttrs, DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = parents
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        children: Mapped[list[Child]] = relationship(back_populates="parent")

    class Child(Base):
        __tablename__ = children
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(Text)
        parent_id: Mapped[int] = mapped_column(ForeignKey(f"{parents}.id"))
        parent: Mapped[Parent] = relationship(back_populates="children")

    with subject.db.session() as session:
        Base.metadata.create_all(session.connection())
        for p in range(1, 13):
            session.add(Parent(id=p, children=[Child(id=p * 10 + c, name=f"c{c}") for c in range(2)]))

    names: list[str] = []
    with query_scope("GET /parents"):
        if subject.mode == "sync":
            with subject.db.session() as session:
                for parent in session.scalars(select(Parent).order_by(Parent.id)):
                    names += [child.name for child in parent.children]  # a lazy load per parent
        else:

            async def run() -> None:
                async with subject.db.asession() as session:
                    for parent in (await session.scalars(select(Parent).order_by(Parent.id))).all():
                        names.extend(child.name for child in await parent.awaitable_attrs.children)

            subject.run(run())
    assert len(names) == 24
    incidents = subject.db.queries.incidents()
    assert len(incidents) == 1, incidents
    assert incidents[0].count == 12
    assert children in incidents[0].sql
    line = Path(__file__).read_text().splitlines()[int(incidents[0].site.rsplit(":", 1)[1]) - 1]
    assert "children" in line


# -- switching off, metrics -----------------------------------------------------------------------------


def test_tracking_off_records_and_publishes_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, bus: EventBus
) -> None:
    subject = _subject(request, tmp_path, "sqlite", "sync", track_queries=False, slow_query_ms=0)
    try:
        events = collect(bus, "db.**")
        subject.db.queries.events = bus
        table = make_table(subject)
        with query_scope("off"):
            select_each(subject, f"SELECT name FROM {table} WHERE id = :id", list(range(1, 13)))
        assert subject.db.queries.all() == []
        assert subject.db.queries.slow() == []
        assert subject.db.queries.incidents() == []
        subject.db.queries.enabled = True
        subject.execute("SELECT 1")
        assert [s.sql for s in subject.db.queries.all() if s.operation != "other"] == ["SELECT $1"]
        subject.db.queries.enabled = False
        subject.execute("SELECT 2")
        assert [s.calls for s in subject.db.queries.all() if s.operation != "other"] == [1]
        wait_for(lambda: any(e.payload["sql"] == "SELECT $1" for e in events))  # slow while it was on
        assert all(e.topic == "db.slow_statement" for e in events)
        assert len([e for e in events if e.payload["sql"] == "SELECT $1"]) == 1
    finally:
        subject.close()


def test_metrics_have_bounded_labels(subject: Subject) -> None:
    table = make_table(subject)
    subject.db.queries.timer = StepTimer(3_000_000)
    select_each(subject, f"SELECT name FROM {table} WHERE id = :id", [1, 2])
    with query_scope("metrics"):
        select_each(subject, f"SELECT name FROM {table} WHERE id = :id", list(range(1, 13)))
    rendered = get_metrics().render_prometheus().decode()
    backend = subject.kind
    assert f'buttress_db_statements_total{{backend="{backend}",operation="select"}}' in rendered
    assert (
        f'buttress_db_statement_seconds_bucket{{backend="{backend}",le="0.005",operation="select"}}'
        in rendered
    )
    assert f'buttress_db_n_plus_one_total{{backend="{backend}"}}' in rendered
    assert table not in rendered
    subject.db.queries.reset()
    assert subject.db.queries.all() == []
    assert subject.db.queries.incidents() == []
    after = get_metrics().render_prometheus().decode()
    assert f'buttress_db_statements_total{{backend="{backend}",operation="select"}}' in after


def test_the_tracker_repr_names_no_sql(subject: Subject) -> None:
    assert isinstance(subject.db.queries, QueryTracker)
    assert "QueryTracker(backend=" in repr(subject.db.queries)


def test_explain_is_spaced_out_per_fingerprint(subject: Subject) -> None:
    table = make_table(subject)
    clock = FakeClock()
    tracker = subject.db.queries
    tracker.clock = clock
    tracker.timer = StepTimer(150_000_000)
    sql = f"SELECT name FROM {table} WHERE id = :id"
    select_each(subject, sql, [1])
    first = [e for e in tracker.slow() if e.fingerprint == fingerprint(sql).id]
    select_each(subject, sql, [2])
    both = [e for e in tracker.slow() if e.fingerprint == fingerprint(sql).id]
    assert len(first) == 1
    assert len(both) == 2
    assert both[1].plan == both[0].plan


# -- the docs -------------------------------------------------------------------------------------------


def test_the_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "db-tracking.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), re.DOTALL)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(docs), "exec"), namespace)  # noqa: S102 - the docs' own examples
