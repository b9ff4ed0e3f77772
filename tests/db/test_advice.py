"""Index advice on SQLite and PostgreSQL, sync and async: ten seeded missing indexes found (and verified
with hypopg on PostgreSQL), none once they exist, none for a tiny table, unverified without hypopg."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, make_url, text

from buttress.config import DbSettings
from buttress.db import AdviceReport, Database, IndexAdvice, Sample
from buttress.db._advice import index_ddl, index_name, normalise
from buttress.db._advise_run import _step, _unplannable
from buttress.db._plans import conjuncts, scan_uses
from buttress.db._sqlite_plans import scanned
from buttress.errors import BackendUnavailable, ValidationError
from tests._ports import free_port
from tests.conftest import services_required
from tests.db._subject import KINDS, MODES, rows_of

ROWS = 30_000
SECRET_EMAIL = "user-secret-9931@example.com"
SECRET_CODE = "p4242"


@dataclass(frozen=True)
class World:
    """Two seeded tables on one database: ``events`` (ROWS rows) and ``parents`` (ROWS / 2)."""

    kind: str
    url: str
    events: str
    parents: str


def _seed(db: Database, events: str, parents: str) -> None:
    timestamp = "timestamp" if db.backend == "postgresql" else "text"
    with db.session() as session:
        session.execute(text(f"CREATE TABLE {parents} (id int PRIMARY KEY, code text UNIQUE, label text)"))
        session.execute(
            text(
                f"CREATE TABLE {events} (id int PRIMARY KEY, account_id int, created_at {timestamp},"
                " region int, kind int, shop_id int, amount int, parent_id int, score int,"
                f" archived_at {timestamp}, ref_code int, email varchar(80), batch_id int, note text)"
            )
        )
        session.execute(
            text(f"INSERT INTO {parents} VALUES (:id, :code, :label)"),
            [{"id": n, "code": f"p{n}", "label": f"label {n}"} for n in range(1, ROWS // 2 + 1)],
        )
        session.execute(
            text(
                f"INSERT INTO {events} VALUES (:id, :account_id, :created_at, :region, :kind, :shop_id,"
                " :amount, :parent_id, :score, :archived_at, :ref_code, :email, :batch_id, :note)"
            ),
            [
                {
                    "id": n,
                    "account_id": n % 3000,
                    "created_at": f"2020-{1 + n // 2700:02d}-{1 + n % 28:02d} {n % 24:02d}:00:00",
                    "region": n % 50,
                    "kind": (n // 50) % 60,
                    "shop_id": n % 100,
                    "amount": (n * 7919) % 1000,
                    "parent_id": n % (ROWS // 2) + 1,
                    "score": (n * 104729) % 1000003,
                    "archived_at": None if n % 200 == 0 else "2020-01-01 00:00:00",
                    "ref_code": n,
                    "email": f"user{n}@example.com",
                    "batch_id": n // 40,
                    "note": "x" * 60,
                }
                for n in range(1, ROWS + 1)
            ],
        )
        session.execute(text(f"ANALYZE {events}"))
        session.execute(text(f"ANALYZE {parents}"))


@contextmanager
def analysed_table(db: Database, columns: str, rows: Sequence[dict[str, int]]) -> Iterator[str]:
    """A fresh table of ``columns`` holding ``rows`` (planner statistics gathered) for the block; then
    dropped and ``db`` closed."""
    table = f"adv_table_{uuid.uuid4().hex[:8]}"
    names = list(rows[0])
    insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
    try:
        with db.session() as session:
            session.execute(text(f"CREATE TABLE {table} ({columns})"))
            session.execute(text(insert), list(rows))
            if db.backend == "postgresql":
                session.execute(text(f"ANALYZE {table}"))
        yield table
    finally:
        with db.session() as session:
            session.execute(text(f"DROP TABLE IF EXISTS {table}"))
        db.close()


def need_hypopg(url: str) -> None:
    """Skip without hypopg in the test db; under BUTTRESS_REQUIRE_SERVICES=1, fail (.ci/run adds it)."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'").fetchone() is not None:
            return
    reason = "the hypopg extension is not in the test database (CREATE EXTENSION hypopg; .ci/run does it)"
    if services_required():
        pytest.fail(reason + " and BUTTRESS_REQUIRE_SERVICES=1 turns the skip into a failure", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module", params=KINDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The seeded tables on each database, built once per module and dropped afterwards."""
    kind = str(request.param)
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('advice') / 'advice.db'}"
    else:
        url = request.getfixturevalue("database_url")
        need_hypopg(url)
    with seeded_world(kind, url, DbSettings()) as made:
        yield made


@contextmanager
def seeded_world(kind: str, url: str, settings: DbSettings) -> Iterator[World]:
    """The seeded tables on ``url``, dropped when the block ends."""
    suffix = uuid.uuid4().hex[:8]
    made = World(kind, url, f"adv_events_{suffix}", f"adv_parents_{suffix}")
    db = Database(url, settings=settings)
    try:
        _seed(db, made.events, made.parents)
        yield made
    finally:
        with db.session() as session:
            session.execute(text(f"DROP TABLE IF EXISTS {made.events}"))
            session.execute(text(f"DROP TABLE IF EXISTS {made.parents}"))
        db.close()


class Advisor:
    """``db.advise`` or ``await db.aadvise`` by mode, on a Database of its own."""

    def __init__(self, url: str, mode: str, **options: Any) -> None:
        self.db = Database(url, settings=DbSettings(**options))
        self.mode = mode
        self.loop = asyncio.new_event_loop()
        self.tables: list[str] = []

    def table(self, name: str, columns: str, rows: str) -> str:
        """A fresh table ``name_<suffix> (columns)`` filled by ``INSERT ... {rows}`` and ANALYZEd;
        dropped by :meth:`close`."""
        table = f"{name}_{uuid.uuid4().hex[:8]}"
        self.tables.append(table)
        self.execute(f"CREATE TABLE {table} ({columns})")
        self.execute(f"INSERT INTO {table} {rows}")
        self.execute(f"ANALYZE {table}")
        return table

    def advise(self, samples: Any, **options: Any) -> AdviceReport:
        if self.mode == "sync":
            return self.db.advise(samples, **options)
        return self.loop.run_until_complete(self.db.aadvise(samples, **options))

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql`` through the same pool (sync or async) the advice used."""
        if self.mode == "sync":
            with self.db.session() as session:
                return rows_of(session.execute(text(sql)))

        async def run() -> list[tuple[Any, ...]]:
            async with self.db.asession() as session:
                return rows_of(await session.execute(text(sql)))

        return self.loop.run_until_complete(run())

    def close(self) -> None:
        for table in self.tables:
            self.execute(f"DROP TABLE IF EXISTS {table}")
        self.loop.run_until_complete(self.db.aclose())
        self.loop.close()


@pytest.fixture(params=MODES)
def advisor(request: pytest.FixtureRequest, world: World) -> Iterator[Advisor]:
    made = Advisor(world.url, str(request.param), pool_size=1, max_overflow=0)  # one connection: see leaks
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=MODES)
def pg_advisor(request: pytest.FixtureRequest, database_url: str) -> Iterator[Advisor]:
    """PostgreSQL alone (hypopg is PostgreSQL's), sync and async, for tests with tables of their own."""
    need_hypopg(database_url)
    made = Advisor(database_url, str(request.param))
    try:
        yield made
    finally:
        made.close()


def ten_queries(world: World) -> list[tuple[Sample, tuple[str, ...]]]:
    """Ten statements, each missing its own index, with the columns that index should have."""
    e, p = world.events, world.parents
    return [
        (
            Sample(f"SELECT * FROM {e} WHERE account_id = :a", {"a": 42}, calls=900, total_seconds=9.0),
            ("account_id",),
        ),
        # ankane/dexter#14: a range on a timestamp
        (Sample(f"SELECT * FROM {e} WHERE created_at >= :t", {"t": "2020-11-20 00:00:00"}), ("created_at",)),
        (Sample(f"SELECT id FROM {e} WHERE region = 7 AND kind = 3"), ("region", "kind")),
        (
            Sample(f"SELECT * FROM {e} WHERE shop_id = %(s)s AND amount > %(x)s", {"s": 5, "x": 900}),
            ("shop_id", "amount"),
        ),
        (
            Sample(
                f"SELECT e.id FROM {p} p JOIN {e} e ON e.parent_id = p.id WHERE p.code = :c",
                {"c": SECRET_CODE},
            ),
            ("parent_id",),
        ),
        (Sample(f"SELECT * FROM {e} ORDER BY score DESC LIMIT 10"), ("score",)),
        (Sample(f"SELECT id FROM {e} WHERE archived_at IS NULL"), ("archived_at",)),
        (
            Sample(f"SELECT * FROM {e} WHERE ref_code IN (:a, :b, :c)", {"a": 1, "b": 20, "c": 300}),
            ("ref_code",),
        ),
        (Sample(f"SELECT id FROM {e} WHERE email = %(e)s", {"e": SECRET_EMAIL}), ("email",)),
        (
            Sample(
                f"WITH recent AS (SELECT * FROM {e} WHERE batch_id = :b) SELECT count(*) FROM recent",
                {"b": 17},
            ),
            ("batch_id",),
        ),
    ]


def _by_statement(report: AdviceReport) -> dict[str, IndexAdvice]:
    return {statement: advice for advice in report.indexes for statement in advice.statements}


def _same_columns(found: Sequence[str], expected: Sequence[str]) -> bool:
    return tuple(found) == tuple(expected) or (
        len(expected) == 2 and set(found) == set(expected) and expected[0] == "region"
    )


def test_ten_seeded_missing_indexes_are_found(world: World, advisor: Advisor) -> None:
    queries = ten_queries(world)
    started = time.perf_counter()
    report = advisor.advise([sample for sample, _columns in queries])
    elapsed = time.perf_counter() - started
    found = _by_statement(report)
    assert report.skipped == ()
    assert len(report.indexes) == 10, report.text
    for sample, columns in queries:
        advice = found[sample.statement]
        assert advice.table == world.events
        assert _same_columns(advice.columns, columns), (sample.statement, advice.columns)
        if world.kind == "postgresql":
            assert report.hypopg is True
            assert advice.verified, advice.text
            assert advice.cost_before is not None
            assert advice.cost_after is not None
            assert advice.ratio is not None
            assert advice.ratio <= 0.5
            assert advice.cost_after <= advice.cost_before / 2
            assert advice.ddl.startswith(
                f"CREATE INDEX CONCURRENTLY {advice.name} ON public.{world.events} ("
            )
        else:
            assert not advice.verified
            assert advice.ratio is None
            assert advice.reason.startswith("unverified")
            assert "UNVERIFIED" in advice.text
            assert advice.ddl.startswith(f"CREATE INDEX {advice.name} ON {world.events} (")
    # ranked: verified first, then by the time the statements took (the first sample says 9 s)
    assert report.indexes[0].columns == ("account_id",)
    assert report.indexes[0].calls == 900
    if world.kind == "postgresql":  # nothing hypothetical left on the pooled connection, nor read-only
        assert advisor.execute("SELECT count(*) FROM hypopg_list_indexes") == [(0,)]
        assert advisor.execute("SHOW transaction_read_only") == [("off",)]
    assert elapsed < 30, f"advising ten statements took {elapsed:.2f}s"
    print(f"\n{world.kind}-{advisor.mode}: advised ten statements in {report.seconds * 1000:.0f} ms")


def test_nothing_is_advised_once_the_indexes_exist(world: World, advisor: Advisor) -> None:
    queries = ten_queries(world)
    made: list[str] = []
    try:
        for _sample, columns in queries:
            name = index_name(world.events, columns) + "_real"
            advisor.execute(f"CREATE INDEX {name} ON {world.events} ({', '.join(columns)})")
            made.append(name)
        advisor.execute(f"ANALYZE {world.events}")
        report = advisor.advise([sample for sample, _columns in queries])
        assert report.indexes == (), report.text
        assert report.skipped == ()
        assert report.text.startswith("No index advice")
    finally:
        for name in made:
            advisor.execute(f"DROP INDEX IF EXISTS {name}")


def test_an_existing_index_leading_with_the_columns_covers_them(world: World, advisor: Advisor) -> None:
    sample = Sample(f"SELECT * FROM {world.events} WHERE kind = :k AND region = :r", {"k": 3, "r": 7})
    try:
        advisor.execute(f"CREATE INDEX cover_{world.events} ON {world.events} (region, kind, shop_id)")
        advisor.execute(f"ANALYZE {world.events}")
        assert advisor.advise([sample]).indexes == ()
    finally:
        advisor.execute(f"DROP INDEX IF EXISTS cover_{world.events}")


def test_advice_never_holds_parameter_values(world: World, advisor: Advisor) -> None:
    samples = [
        Sample(f"SELECT id FROM {world.events} WHERE email = :e", {"e": SECRET_EMAIL}),
        Sample(f"SELECT id FROM {world.events} WHERE email = '{SECRET_EMAIL}'"),
        Sample(
            f"SELECT e.id FROM {world.parents} p JOIN {world.events} e ON e.parent_id = p.id"
            " WHERE p.code = %(c)s",
            {"c": SECRET_CODE},
        ),
        Sample(f"SELECT * FROM missing_{world.events} WHERE email = :e", {"e": SECRET_EMAIL}),
    ]
    report = advisor.advise(samples)
    assert len(report.indexes) == 2
    assert len(report.skipped) == 1
    rendered = repr(report) + report.text
    assert SECRET_EMAIL not in rendered
    assert SECRET_CODE not in rendered
    assert "9931" not in rendered
    email = next(a for a in report.indexes if a.columns == ("email",))
    assert email.statements == (f"SELECT id FROM {world.events} WHERE email = ?",)
    assert email.calls == 2  # the literal and the parameterised spelling are one statement


def test_statements_it_cannot_plan_are_skipped_and_the_rest_advised(world: World, advisor: Advisor) -> None:
    good = Sample(f"SELECT * FROM {world.events} WHERE account_id = :a", {"a": 1})
    report = advisor.advise(
        [
            f"CREATE INDEX nope ON {world.events} (note)",
            f"SELECT 1; DROP TABLE {world.events}",
            Sample(f"SELECT * FROM {world.events} WHERE account_id = :a"),
            Sample(f"SELECT * FROM no_such_table_{world.events} WHERE x = :x", {"x": 5}),
            good,
        ]
    )
    assert [advice.columns for advice in report.indexes] == [("account_id",)]
    reasons = [skip.reason for skip in report.skipped]
    assert reasons[:3] == [
        "only SELECT, WITH, INSERT, UPDATE and DELETE statements are planned",
        "more than one statement",
        "it has parameter markers but no params to plan it with",
    ]
    assert reasons[3].startswith("the database refused to plan it")
    assert advisor.execute(f"SELECT count(*) FROM {world.events}") == [(ROWS,)]
    assert "skipped:" in report.text


def test_min_saving_is_the_bar_a_verified_index_must_clear(world: World, advisor: Advisor) -> None:
    sample = Sample(f"SELECT * FROM {world.events} WHERE created_at >= :t", {"t": "2020-09-01 00:00:00"})
    lenient = advisor.advise([sample], min_saving=0.1)
    strict = advisor.advise([sample], min_saving=0.999)
    assert [a.columns for a in lenient.indexes] == [("created_at",)]
    if world.kind == "postgresql":
        assert strict.indexes == ()
    else:  # nothing to measure the bar against on SQLite: the candidate stays, unverified
        assert [a.verified for a in strict.indexes] == [False]


def test_a_tiny_table_gets_no_index(pg_advisor: Advisor) -> None:
    table = pg_advisor.table(
        "adv_tiny", "id int PRIMARY KEY, k int", "SELECT n, n % 5 FROM generate_series(1, 20) n"
    )
    report = pg_advisor.advise([Sample(f"SELECT * FROM {table} WHERE k = :k", {"k": 3})])
    assert report.hypopg
    assert report.indexes == ()
    assert report.skipped == ()


@pytest.fixture
def no_hypopg_url(database_url: str) -> Iterator[str]:
    """A throwaway database on the same server, without the hypopg extension; dropped afterwards."""
    name = f"advice_nohypo_{uuid.uuid4().hex[:8]}"
    admin = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.parametrize("mode", MODES)
def test_without_hypopg_advice_says_it_is_unverified(no_hypopg_url: str, mode: str) -> None:
    advisor = Advisor(no_hypopg_url, mode)
    try:
        orders = advisor.table(
            "orders",
            "id int PRIMARY KEY, customer_id int, placed_at timestamp",
            "SELECT n, n % 2000, timestamp '2024-01-01' + n * interval '1 minute'"
            " FROM generate_series(1, 20000) n",
        )
        report = advisor.advise(
            [Sample(f"SELECT * FROM {orders} WHERE customer_id = %(c)s ORDER BY placed_at LIMIT 5", {"c": 7})]
        )
        assert report.hypopg is False
        [advice] = report.indexes
        assert advice.columns == ("customer_id", "placed_at")
        assert not advice.verified
        assert advice.cost_after is None
        assert advice.ratio is None
        assert advice.cost_before is not None
        assert advice.cost_before > 0
        assert "unverified" in advice.reason
        assert "hypopg" in advice.reason
        assert advice.ddl == (
            f"CREATE INDEX CONCURRENTLY ix_{orders}_customer_id_placed_at"
            f" ON public.{orders} (customer_id, placed_at)"
        )
    finally:
        advisor.close()


def test_several_tables_helped_together_are_advised_together(pg_advisor: Advisor) -> None:
    """ankane/dexter#24: two missing indexes that each save too little alone but enough together."""
    fill = "SELECT n, n % 4000, repeat('y', 40) FROM generate_series(1, 20000) n"
    a, b = (
        pg_advisor.table(f"adv_pair_{name}", "id int PRIMARY KEY, tag int, note text", fill) for name in "ab"
    )
    sample = Sample(
        f"SELECT (SELECT count(*) FROM {a} WHERE tag = :t) + (SELECT count(*) FROM {b} WHERE tag = :t)",
        {"t": 9},
    )
    report = pg_advisor.advise([sample])
    assert sorted(advice.table for advice in report.indexes) == sorted([a, b])
    for advice in report.indexes:
        assert advice.verified
        assert advice.columns == ("tag",)
        assert advice.ratio is not None
        assert advice.ratio <= 0.5
        assert "together" in advice.reason


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda db: db.advise("SELECT 1"), "samples"),
        (lambda db: db.advise([42]), "samples"),
        (lambda db: db.advise(["SELECT 1"], min_saving=1.5), "min_saving"),
        (lambda db: db.advise([Sample("SELECT 1", params="x")]), "params"),
        (lambda db: db.advise([Sample("  ")]), "sql"),
        (lambda db: db.advise([Sample("SELECT 1", calls=0)]), "calls"),
        (lambda db: db.advise([Sample("SELECT 1", total_seconds=-1)]), "total_seconds"),
    ],
)
def test_caller_mistakes_are_validation_errors(tmp_path: Path, call: Any, field: str) -> None:
    db = Database(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        with pytest.raises(ValidationError) as raised:
            call(db)
        assert raised.value.field == field
    finally:
        db.close()


def test_the_async_twin_validates_the_same_way(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'v.db'}")
    with pytest.raises(ValidationError):
        asyncio.run(db.aadvise(["SELECT 1"], min_saving=0))


def test_index_names_are_safe_deterministic_and_short() -> None:
    long_name = index_name("t" * 50, ["a_rather_long_column_name", "another_long_column_name"])
    assert len(long_name) <= 63
    assert long_name == index_name("t" * 50, ["a_rather_long_column_name", "another_long_column_name"])
    assert re.fullmatch(r"[a-z0-9_]+", long_name)
    assert index_name("Orders", ["Email"]) != index_name("orders", ["email"])
    assert index_ddl("postgresql", "app", "Orders", ["Email", "id"]) == (
        f'CREATE INDEX CONCURRENTLY {index_name("Orders", ["Email", "id"])} ON app."Orders" ("Email", id)'
    )
    assert index_ddl("sqlite", None, "orders", ["email"]) == "CREATE INDEX ix_orders_email ON orders (email)"


def test_normalised_statements_fold_literals_parameters_and_in_lists() -> None:
    assert normalise(
        "SELECT * FROM t  WHERE a = 'x''y' AND b IN (1, 2, 3) AND c = %(c)s AND d = :d AND e::text = $1"
    ) == ("SELECT * FROM t WHERE a = ? AND b IN (?) AND c = ? AND d = ? AND e::text = ?")


def test_plan_conditions_are_read_through_casts_any_and_nested_ands() -> None:
    plan = [
        {
            "Plan": {
                "Node Type": "Nested Loop",
                "Total Cost": 10.0,
                "Join Filter": "(o.customer_id = c.id)",
                "Plans": [
                    {
                        "Node Type": "Seq Scan",
                        "Schema": "public",
                        "Relation Name": "customers",
                        "Alias": "c",
                        "Filter": "(((c.email)::text = 'a@b'::text) AND (c.tier = ANY ('{1,2}'::integer[]))"
                        " AND (c.gone IS NULL))",
                    },
                    {
                        "Node Type": "Seq Scan",
                        "Schema": "public",
                        "Relation Name": "orders",
                        "Alias": "o",
                        "Filter": "((o.placed_at >= '2024-01-01'::date) AND (lower(o.note) = 'x'::text)"
                        " AND ((o.a = 1) OR (o.b = 2)))",
                    },
                ],
            }
        }
    ]
    uses = {use.alias: use for use in scan_uses(plan)}
    assert uses["c"].equality == ["email", "tier", "gone"]
    assert uses["c"].joins == ["id"]
    assert uses["o"].ranges == ["placed_at"]
    assert uses["o"].equality == []
    assert uses["o"].joins == ["customer_id"]
    assert conjuncts("((a = 1) AND ((b = 'x AND y') AND (c < 3)))") == ["a = 1", "b = 'x AND y'", "c < 3"]


def test_sqlite_automatic_indexes_are_read_as_join_keys() -> None:
    found, sorts = scanned(
        ["SCAN t", "SEARCH u USING AUTOMATIC COVERING INDEX (t_id=? AND z=?)", "USE TEMP B-TREE FOR ORDER BY"]
    )
    assert found == [("t", []), ("u", ["t_id", "z"])]
    assert sorts


DOC = Path(__file__).resolve().parents[2] / "docs" / "db-advice.md"


def test_the_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__doc_example__"})  # noqa: S102


def test_parallel_scans_under_gather_merge_give_sort_keys() -> None:
    """ankane/dexter#14's plan shape: a Parallel Seq Scan under Gather (Merge)."""
    scan = {
        "Node Type": "Seq Scan",
        "Parallel Aware": True,
        "Schema": "public",
        "Relation Name": "t",
        "Alias": "t",
        "Filter": "((t.updated_at >= (CURRENT_DATE - 1)) AND (t.seen_at < CURRENT_DATE))",
    }
    sort = {"Node Type": "Sort", "Sort Key": ["t.updated_at DESC"], "Plans": [scan]}
    plan = {"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Gather Merge", "Plans": [sort]}]}}
    [use] = scan_uses(plan)
    assert use.ranges == ["updated_at", "seen_at"]
    assert use.sort == ["updated_at"]


def test_advise_and_aadvise_take_the_same_parameters() -> None:
    assert inspect.signature(Database.advise).parameters == inspect.signature(Database.aadvise).parameters


def test_no_samples_no_advice(world: World, advisor: Advisor) -> None:
    report = advisor.advise([])
    assert report.indexes == ()
    assert report.skipped == ()
    assert report.backend == world.kind


def test_a_candidate_hypopg_refuses_is_passed_over(pg_advisor: Advisor) -> None:
    """xid has ``=`` but no B-tree operator class: hypopg refuses it, and the other column is advised."""
    table = pg_advisor.table(
        "adv_xid",
        "id int PRIMARY KEY, x xid, k int",
        "SELECT n, (n % 7)::text::xid, n % 3000 FROM generate_series(1, 20000) n",
    )
    report = pg_advisor.advise([Sample(f"SELECT * FROM {table} WHERE x = '3'::xid AND k = :k", {"k": 5})])
    assert report.skipped == ()
    assert [advice.columns for advice in report.indexes] == [("k",)]
    assert report.indexes[0].verified


def test_casts_are_not_parameter_markers_and_quoted_percents_stay() -> None:
    assert _unplannable(Sample("SELECT * FROM t WHERE (a)::text = 'x'"), "postgresql") is None
    assert _unplannable(Sample("SELECT * FROM t WHERE a = $1"), "postgresql") is not None
    assert _unplannable(Sample("SELECT * FROM t WHERE a = ?"), "sqlite") is not None
    assert _unplannable(Sample("SELECT * FROM t WHERE a ? 'key'"), "postgresql") is None  # jsonb's ?
    step = _step("", Sample("SELECT * FROM t WHERE a LIKE '%s%' AND b = %s AND c = %(c)s", (1, 2)), "sqlite")
    assert step.sql == "SELECT * FROM t WHERE a LIKE '%s%' AND b = ? AND c = :c"


@pytest.mark.parametrize("mode", MODES)
def test_an_unreachable_database_is_backend_unavailable(mode: str) -> None:
    advisor = Advisor(f"postgresql://app:s3cret@127.0.0.1:{free_port()}/app", mode, pool_timeout=1)
    try:
        with pytest.raises(BackendUnavailable) as raised:
            advisor.advise([Sample("SELECT * FROM orders WHERE id = :id", {"id": 1})])
        assert "s3cret" not in str(raised.value)
    finally:
        advisor.close()


def test_an_index_that_leaves_a_filter_gets_a_wider_one(world: World, advisor: Advisor) -> None:
    """An index on ``region`` alone still filters ``kind``: PostgreSQL verifies ``(region, kind)``; SQLite,
    which searches by the index and shows no filter in its plan, advises nothing."""
    sample = Sample(f"SELECT id FROM {world.events} WHERE region = :r AND kind = :k", {"r": 7, "k": 3})
    try:
        advisor.execute(f"CREATE INDEX narrow_{world.events} ON {world.events} (region)")
        advisor.execute(f"ANALYZE {world.events}")
        report = advisor.advise([sample])
        if world.kind == "postgresql":
            [advice] = report.indexes
            assert set(advice.columns) == {"region", "kind"}
            assert advice.verified
        else:
            assert report.indexes == ()
    finally:
        advisor.execute(f"DROP INDEX IF EXISTS narrow_{world.events}")


def test_the_advisors_statements_are_marked_internal(world: World, advisor: Advisor) -> None:
    """Query tracking can tell the advisor's EXPLAINs from the application's by ``buttress_internal``."""
    engine = advisor.db.engine if advisor.mode == "sync" else advisor.db.async_engine.sync_engine
    seen: list[bool] = []

    def record(conn: Any, _cursor: Any, _sql: str, _params: Any, _context: Any, _many: bool) -> None:
        seen.append(bool(conn.get_execution_options().get("buttress_internal")))

    event.listen(engine, "before_cursor_execute", record)
    try:
        advisor.advise([Sample(f"SELECT * FROM {world.events} WHERE account_id = :a", {"a": 3})])
        advised = len(seen)
        assert advisor.execute("SELECT 1") == [(1,)]  # the application's own statements are not marked
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert advised > 3
    assert all(seen[:advised])
    assert not any(seen[advised:])
    assert len(seen) > advised


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_without_samples_the_tracked_workload_is_advised_and_the_advisor_is_not_tracked(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The tracker's costliest statements, with their real parameters, go to the advisor by default."""
    from sqlalchemy import text

    from tests.db._subject import open_database

    db = open_database(kind, tmp_path, request)
    rows = [{"id": n, "owner": n % 700} for n in range(20_000)]
    with analysed_table(db, "id INTEGER PRIMARY KEY, owner INT, note TEXT", rows) as table:
        with db.session() as session:
            for owner in range(25):
                session.execute(text(f"SELECT id FROM {table} WHERE owner = :o"), {"o": owner}).all()
        tracked = {stats.fingerprint for stats in db.queries.all()}
        report = db.advise()
        assert [advice.columns for advice in report.indexes] == [("owner",)]
        assert report.indexes[0].verified is (kind == "postgresql")
        assert report.indexes[0].calls == 25
        assert report.indexes[0].statements == (
            f"SELECT id FROM {table} WHERE owner = $1",
        )  # as /ops/db names it
        assert {stats.fingerprint for stats in db.queries.all()} == tracked  # the advisor's plans: untracked


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_tracked_executemany_is_planned_with_its_first_row(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An UPDATE run with a list of parameter rows is advised (planned with its first row), not a crash."""
    from tests.db._subject import open_database

    db = open_database(kind, tmp_path, request)
    rows = [{"id": n, "code": n} for n in range(20_000)]
    with analysed_table(db, "id INTEGER PRIMARY KEY, code INT, name TEXT", rows) as table:
        with db.session() as session:
            session.execute(
                text(f"UPDATE {table} SET name = :n WHERE code = :c"),
                [{"n": "a", "c": 1}, {"n": "b", "c": 2}],
            )
        report = db.advise()
        assert report.skipped == ()
        assert [advice.columns for advice in report.indexes] == [("code",)]


def test_a_sample_the_driver_cannot_bind_is_skipped_not_fatal(pg_advisor: Advisor) -> None:
    """A driver's TypeError for one sample's parameters skips that sample; the others are still advised."""
    table = pg_advisor.table(
        "bind", "id int PRIMARY KEY, code int", "SELECT n, n FROM generate_series(1, 20000) n"
    )
    bad = Sample(f"SELECT id FROM {table} WHERE id > %(low)s", [{"low": 1}])  # rows, not a mapping
    good = Sample(f"SELECT id FROM {table} WHERE code = %(c)s", {"c": 5})
    report = pg_advisor.advise([bad, good])
    assert [advice.columns for advice in report.indexes] == [("code",)]
    assert len(report.skipped) == 1
    assert "TypeError" in report.skipped[0].reason
