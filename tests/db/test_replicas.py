"""Read replicas (PostgreSQL only) against a real primary and hot standby: routing, read-your-writes by WAL
position, lag, a standby killed mid-statement, metrics; and on SQLite, the refusal and the plain fallback."""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, text
from sqlalchemy.orm import DeclarativeBase, mapped_column

from buttress.cache import Cache, RedisBackend
from buttress.clock import FakeClock
from buttress.config import DbSettings, load_settings
from buttress.db import Database, consistent
from buttress.errors import ConfigError, ValidationError
from buttress.observe.metrics import MetricsRegistry
from tests._pg_cluster import PgCluster
from tests.db._subject import KINDS, MODES, Subject, open_database

PASSWORD = "s3cret-Pa55word"
ROOT = Path(__file__).resolve().parents[2]
IN_RECOVERY = text("SELECT pg_is_in_recovery()")


def _reads(replicated: Replicated, name: str) -> float:
    return float(replicated.db.replicas.reads_metric.labels(replica=name).value)


def _failovers(replicated: Replicated, name: str) -> float:
    return float(replicated.db.replicas.failovers_metric.labels(replica=name).value)


class Replicated:
    """A Database on the cluster's primary with its standby as ``replica1``, a table of its own."""

    def __init__(self, cluster: PgCluster, **options: Any) -> None:
        self.cluster = cluster
        self.clock = FakeClock()
        self.metrics = MetricsRegistry()
        cache = options.pop("cache", None) or Cache()
        settings = DbSettings(replicas=[cluster.standby_url], **options)
        self.db = Database(
            cluster.primary_url, settings=settings, clock=self.clock, cache=cache, metrics=self.metrics
        )
        self.table = f"pairs_{uuid.uuid4().hex[:8]}"
        with self.db.session() as session:
            session.execute(text(f"CREATE TABLE {self.table} (id int PRIMARY KEY, value int NOT NULL)"))
        cluster.wait_replayed()

    def close(self) -> None:
        with self.db.session() as session:
            session.execute(text(f"DROP TABLE IF EXISTS {self.table}"))
        asyncio.run(self.db.aclose())


@pytest.fixture
def replicated(pg_cluster: PgCluster) -> Iterator[Replicated]:
    made = Replicated(pg_cluster)
    try:
        yield made
    finally:
        made.close()


# -- SQLite and settings ----------------------------------------------------------------------------------


def test_replicas_on_sqlite_are_refused_naming_the_field(tmp_path: Path) -> None:
    settings = DbSettings(replicas=[f"postgresql://app:{PASSWORD}@127.0.0.1:5432/app"])
    with pytest.raises(ValidationError, match="PostgreSQL only") as caught:
        Database(f"sqlite:///{tmp_path / 'a.db'}", settings=settings)
    assert caught.value.field == "replicas"
    assert PASSWORD not in str(caught.value)


def test_replica_urls_must_be_postgresql_and_their_passwords_never_show() -> None:
    with pytest.raises(Exception, match="PostgreSQL only") as caught:
        DbSettings(replicas=[f"mysql://app:{PASSWORD}@db/app"])
    assert PASSWORD not in str(caught.value)
    settings = DbSettings(replicas=[f"postgresql://app:{PASSWORD}@10.0.0.2:5432/app"])
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_read_only_sessions_without_replicas_read_the_one_database(
    kind: str, mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Both backends: ``read_only=True`` and ``key`` with no replicas use the database itself."""
    db = open_database(kind, tmp_path, request)
    subject = Subject(kind, mode, db, asyncio.new_event_loop())
    table = subject.table("plain")
    try:
        subject.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        db.transaction(lambda s: s.execute(text(f"INSERT INTO {table} VALUES (1)")), key="user:1")
        if mode == "sync":
            with consistent(), db.session(read_only=True, key="user:1") as session:
                count = session.execute(text(f"SELECT count(*) FROM {table}")).scalar()
        else:

            async def read() -> Any:
                async with db.asession(read_only=True, key="user:1") as session:
                    return (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()

            count = subject.run(read())
        assert count == 1
        assert db.replicas.status() == []
    finally:
        subject.close()


def test_a_key_must_be_a_non_empty_string(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}", settings=DbSettings())
    with pytest.raises(ValidationError, match="key must be") as caught, db.session(key=" "):
        pass
    assert caught.value.field == "key"
    db.close()


# -- routing ----------------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_reads_without_a_recent_write_go_to_the_replica_and_writes_to_the_primary(
    replicated: Replicated, mode: str
) -> None:
    db = replicated.db
    if mode == "sync":
        with db.session(read_only=True) as session:
            reader = session.execute(IN_RECOVERY).scalar()
        with db.session() as session:
            writer = session.execute(IN_RECOVERY).scalar()
    else:

        async def run() -> tuple[Any, Any]:
            async with db.asession(read_only=True) as session:
                read = (await session.execute(IN_RECOVERY)).scalar()
            async with db.asession() as session:
                written = (await session.execute(IN_RECOVERY)).scalar()
            return read, written

        reader, writer = asyncio.run(run())
    assert reader is True  # a hot standby
    assert writer is False
    assert _reads(replicated, "replica1") == 1
    assert _reads(replicated, "primary") == 0
    [status] = db.replicas.status()
    assert status["name"] == "replica1"
    assert status["healthy"] is True
    assert status["breaker"] == "closed"
    assert status["lag_seconds"] == 0.0
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", status["replayed_lsn"])


WORKERS = 8
UPSERT = "INSERT INTO {table} VALUES (:id, :v) ON CONFLICT (id) DO UPDATE SET value = :v"


class Flipper:
    """Pauses and resumes replay at random moments: when the pairs done reach random thresholds."""

    def __init__(self, cluster: PgCluster, pairs: int, seed: int, flips: int) -> None:
        self.cluster = cluster
        self.thresholds = sorted(random.Random(seed).sample(range(1, pairs), flips))
        self.done = 0
        self.pauses = 0
        self.paused = False
        self.condition = threading.Condition()

    def count(self) -> None:
        with self.condition:
            self.done += 1
            self.condition.notify_all()

    def flip_at(self, threshold: int) -> None:
        with self.condition:
            self.condition.wait_for(lambda: self.done >= threshold, timeout=300)
        if self.paused:
            self.cluster.resume_replay()
        else:
            self.cluster.pause_replay()
            self.pauses += 1
        self.paused = not self.paused

    def run(self) -> None:
        for threshold in self.thresholds:
            self.flip_at(threshold)
        self.cluster.resume_replay()


def _pairs(replicated: Replicated, pairs: int, seed: int) -> tuple[int, int]:
    """``pairs`` write-then-read pairs by WORKERS threads, replay flipped at random; (stale, pauses)."""
    db, table = replicated.db, replicated.table
    flipper = Flipper(replicated.cluster, pairs, seed, flips=pairs // 200)
    stale = [0] * WORKERS

    def work(worker: int) -> None:
        for i in range(worker, pairs, WORKERS):
            row = worker * 10 + i % 10
            key = f"user:{row}" if i % 2 else None
            with consistent():
                with db.session(key=key) as session:
                    session.execute(text(UPSERT.format(table=table)), {"id": row, "v": i})
                if key is not None:  # the key alone carries the position: read in a scope of its own
                    with consistent():
                        read = _read_value(db, table, row, key)
                else:
                    read = _read_value(db, table, row, None)
            stale[worker] += read != i
            flipper.count()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    flipper.run()
    for thread in threads:
        thread.join(300)
    return sum(stale), flipper.pauses


def _read_value(db: Database, table: str, row: int, key: str | None) -> int:
    with db.session(read_only=True, key=key) as session:
        found = session.execute(text(f"SELECT value FROM {table} WHERE id = :id"), {"id": row})
        return int(found.scalar_one())


@pytest.mark.postgres
@pytest.mark.timeout(300)  # 10,000 pairs take 80 s on a busy two-core machine
def test_10000_write_then_read_pairs_with_replay_paused_at_random_read_nothing_stale(
    replicated: Replicated,
) -> None:
    stale, pauses = _pairs(replicated, 10_000, seed=14)

    assert stale == 0
    assert pauses >= 20
    replica, primary = _reads(replicated, "replica1"), _reads(replicated, "primary")
    assert replica + primary == 10_000
    assert replica > 1_000  # the replica served the reads it could
    assert primary > 100  # and the primary those it could not


@pytest.mark.postgres
def test_async_write_then_read_pairs_with_replay_paused_at_random_read_nothing_stale(
    replicated: Replicated,
) -> None:
    db, table, pairs = replicated.db, replicated.table, 1_000
    flipper = Flipper(replicated.cluster, pairs, seed=15, flips=pairs // 50)

    async def work(worker: int) -> int:
        stale = 0
        for i in range(worker, pairs, WORKERS):
            row, key = worker * 10 + i % 10, (f"user:{i % 10}" if i % 2 else None)
            with consistent():
                async with db.asession(key=key) as session:
                    await session.execute(text(UPSERT.format(table=table)), {"id": row, "v": i})
                async with db.asession(read_only=True, key=key) as session:
                    found = await session.execute(
                        text(f"SELECT value FROM {table} WHERE id = :id"), {"id": row}
                    )
                    stale += found.scalar_one() != i
            flipper.count()
        return stale

    async def run() -> int:
        flips = asyncio.create_task(asyncio.to_thread(flipper.run))
        stale = sum(await asyncio.gather(*(work(w) for w in range(WORKERS))))
        await flips
        await db.aclose()
        return stale

    assert asyncio.run(run()) == 0
    assert flipper.pauses >= 5
    assert _reads(replicated, "replica1") > 100
    assert _reads(replicated, "primary") > 10


@pytest.mark.postgres
def test_db_transaction_with_a_key_records_its_write_for_readers_of_the_key(replicated: Replicated) -> None:
    cluster, db, table = replicated.cluster, replicated.db, replicated.table
    cluster.pause_replay()
    db.transaction(lambda s: s.execute(text(f"INSERT INTO {table} VALUES (1, 7)")), key="order:1")
    cluster.wait_paused()

    assert _read_value(db, table, 1, "order:1") == 7
    with db.session(read_only=True) as session:  # no key, no scope: the replica, as it stands
        assert session.execute(IN_RECOVERY).scalar() is True
    assert _reads(replicated, "primary") == 1


@pytest.mark.postgres
def test_a_container_scope_is_a_consistency_scope_with_nothing_to_open(replicated: Replicated) -> None:
    """A request (the ops middleware's scope) or a job reads its own writes; the next one starts afresh."""
    from buttress.container import Container
    from buttress.db import consistent

    cluster, db, table = replicated.cluster, replicated.db, replicated.table
    container = Container()
    cluster.pause_replay()
    with container.scope():
        with db.session() as session:
            session.execute(text(f"INSERT INTO {table} VALUES (1, 7)"))
        cluster.wait_paused()
        with db.session(read_only=True) as session:  # the write is not replayed: the primary serves it
            assert session.execute(text(f"SELECT value FROM {table} WHERE id = 1")).scalar() == 7
        with consistent() as inner, db.session(read_only=True) as session:  # joins the unit's scope
            assert inner.positions  # the position of the write above
            assert session.execute(IN_RECOVERY).scalar() is False
    with container.scope(), db.session(read_only=True) as session:  # a new unit: the replica as it stands
        assert session.execute(IN_RECOVERY).scalar() is True
    assert _reads(replicated, "primary") == 2


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_read_only_sessions_keep_their_isolation_level_and_refuse_writes_on_the_primary_too(
    replicated: Replicated, mode: str
) -> None:
    db, table = replicated.db, replicated.table
    level = text("SELECT current_setting('transaction_isolation'), pg_is_in_recovery()")
    replicated.cluster.pause_replay()
    with consistent():  # a pending write sends the read to the primary, which must refuse writes as well
        with db.session() as session:
            session.execute(text(f"INSERT INTO {table} VALUES (1, 1)"))
        if mode == "sync":
            with db.session(read_only=True, isolation="REPEATABLE READ") as session:
                found = tuple(session.execute(level).one())
            with (
                pytest.raises(Exception, match="read-only transaction"),
                db.session(read_only=True) as session,
            ):
                session.execute(text(f"INSERT INTO {table} VALUES (2, 2)"))
        else:

            async def run() -> tuple[Any, ...]:
                async with db.asession(read_only=True, isolation="REPEATABLE READ") as session:
                    row = tuple((await session.execute(level)).one())
                with pytest.raises(Exception, match="read-only transaction"):
                    async with db.asession(read_only=True) as session:
                        await session.execute(text(f"INSERT INTO {table} VALUES (2, 2)"))
                await db.async_engine.dispose()
                return row

            found = asyncio.run(run())
    assert found == ("repeatable read", False)


class _Base(DeclarativeBase):
    pass


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_orm_objects_still_pending_at_commit_count_as_the_write(replicated: Replicated, mode: str) -> None:
    """``session.add`` without a flush: the write happens at commit, and the scope still waits for it."""
    model = type(
        f"Pair{uuid.uuid4().hex[:6]}",
        (_Base,),
        {
            "__tablename__": replicated.table,
            "id": mapped_column(Integer, primary_key=True),
            "value": mapped_column(Integer),
        },
    )
    cluster, db, table = replicated.cluster, replicated.db, replicated.table
    cluster.pause_replay()
    cluster.wait_paused()
    with consistent():
        if mode == "sync":
            with db.session() as session:
                session.add(model(id=5, value=9))
        else:

            async def write() -> None:
                async with db.asession() as session:
                    session.add(model(id=5, value=9))
                await db.async_engine.dispose()

            asyncio.run(write())
        assert _read_value(db, table, 5, None) == 9
    assert _reads(replicated, "primary") == 1


@pytest.mark.postgres
def test_a_replica_password_never_reaches_status_metrics_or_repr(pg_cluster: PgCluster) -> None:
    url = pg_cluster.standby_url.replace("postgres@", f"postgres:{PASSWORD}@")  # trust auth ignores it
    metrics = MetricsRegistry()
    db = Database(pg_cluster.primary_url, settings=DbSettings(replicas=[url]), cache=Cache(), metrics=metrics)
    try:
        with db.session(read_only=True) as session:
            assert session.execute(IN_RECOVERY).scalar() is True
        shown = [
            str(db.replicas.check()),
            repr(db.replicas),
            repr(db.settings),
            metrics.render_prometheus().decode(),
        ]
        assert all(PASSWORD not in part for part in shown)
        assert 'replica="replica1"' in shown[3]
    finally:
        db.close()


# -- lag --------------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_replica_lagging_past_max_lag_is_left_until_it_catches_up(replicated: Replicated) -> None:
    cluster, db, clock, table = replicated.cluster, replicated.db, replicated.clock, replicated.table
    db.replicas.check()
    cluster.pause_replay()
    with db.session() as session:  # a write nobody waits for: only lag can keep readers off the replica
        session.execute(text(f"INSERT INTO {table} VALUES (1, 1)"))
    cluster.wait_received(cluster.current_lsn())
    cluster.wait_paused()

    clock.advance(1.0)
    [status] = db.replicas.check()
    assert status["lag_seconds"] <= db.settings.max_lag
    assert status["bytes_behind"] > 0
    with db.session(read_only=True) as session:
        assert session.execute(IN_RECOVERY).scalar() is True  # behind, but within max_lag

    clock.advance(db.settings.max_lag + 1)
    with db.session(read_only=True) as session:  # the periodic check runs on this read and sees the lag
        assert session.execute(IN_RECOVERY).scalar() is False
    [status] = db.replicas.status()
    assert status["lag_seconds"] > db.settings.max_lag
    assert status["healthy"] is False
    assert db.replicas.lag_metric.labels(replica="replica1").value > db.settings.max_lag
    assert "buttress_db_replica_lag_seconds" in replicated.metrics.render_prometheus().decode()

    cluster.resume_replay()
    cluster.wait_replayed()
    clock.advance(db.settings.replica_check_interval)
    with db.session(read_only=True) as session:
        assert session.execute(IN_RECOVERY).scalar() is True
    assert db.replicas.status()[0]["lag_seconds"] == 0.0


@pytest.mark.postgres
def test_lag_reads_zero_on_an_idle_primary(replicated: Replicated) -> None:
    """pg_last_xact_replay_timestamp() would grow while idle; the WAL-position lag does not."""
    db, clock = replicated.db, replicated.clock
    replicated.cluster.wait_replayed()
    db.replicas.check()
    clock.advance(600)
    [status] = db.replicas.check()
    assert status["lag_seconds"] == 0.0
    assert status["healthy"] is True


# -- failure ----------------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_standby_killed_mid_statement_loses_no_read_and_opens_the_breaker(
    replicated: Replicated, mode: str
) -> None:
    cluster, db, clock = replicated.cluster, replicated.db, replicated.clock
    slow = text("SELECT pg_is_in_recovery(), 1 FROM pg_sleep(1.5)")
    results: list[Any] = []
    started = threading.Event()

    def read_slowly() -> None:
        if mode == "sync":
            with db.session(read_only=True) as session:
                started.set()
                results.append(tuple(session.execute(slow).one()))
            return

        async def run() -> Any:
            async with db.asession(read_only=True) as session:
                started.set()
                return tuple((await session.execute(slow)).one())

        results.append(asyncio.run(run()))

    reader = threading.Thread(target=read_slowly)
    reader.start()
    assert started.wait(10)
    cluster.wait_standby_statement("pg_sleep(1.5)")  # the slow statement runs on the standby
    cluster.kill_standby()
    reader.join(30)

    assert results == [(False, 1)]  # finished on the primary
    assert _failovers(replicated, "replica1") == 1

    failed = 0
    for _ in range(200):  # more reads while the standby is down: none fails
        try:
            with db.session(read_only=True) as session:
                session.execute(text("SELECT 1")).scalar_one()
        except Exception:
            failed += 1
    assert failed == 0
    [status] = db.replicas.status()
    assert status["breaker"] == "open"
    assert status["healthy"] is False
    assert status["url"] == cluster.standby_url.replace("postgresql://", "postgresql+psycopg://")

    cluster.restart_standby()
    cluster.wait_replayed()
    clock.advance(db.settings.replica_cooldown + db.settings.replica_check_interval)
    with db.session(read_only=True) as session:  # the cool-down over, a probe finds it back
        assert session.execute(IN_RECOVERY).scalar() is True
    assert db.replicas.status()[0]["breaker"] == "closed"


# -- a key shared between processes ----------------------------------------------------------------------

_READER = """
import sys
from sqlalchemy import Integer, text
from sqlalchemy.orm import DeclarativeBase, mapped_column
from buttress.cache import Cache, RedisBackend
from buttress.config import DbSettings, load_settings
from buttress.db import Database
primary, standby, redis_url, namespace, table = sys.argv[1:6]
cache = Cache(RedisBackend(redis_url), namespace=namespace)
db = Database(primary, settings=DbSettings(replicas=[standby]), cache=cache)
for key in ("user:42", "user:7"):
    with db.session(read_only=True, key=key) as session:
        row = session.execute(text(f"SELECT pg_is_in_recovery(), count(*) FROM {table}")).one()
    print(key, row[0], row[1])
db.close()
"""


@pytest.mark.postgres
def test_a_key_written_in_one_process_is_honoured_by_another_through_redis(
    pg_cluster: PgCluster, redis_url: str
) -> None:
    namespace = f"rep{uuid.uuid4().hex[:8]}"
    cache = Cache(RedisBackend(redis_url), namespace=namespace)
    replicated = Replicated(pg_cluster, cache=cache)
    try:
        pg_cluster.pause_replay()
        with replicated.db.session(key="user:42") as session:
            session.execute(text(f"INSERT INTO {replicated.table} VALUES (42, 1)"))
        pg_cluster.wait_paused()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        args = [pg_cluster.primary_url, pg_cluster.standby_url, redis_url, namespace, replicated.table]
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_READER), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=True,
        ).stdout.split("\n")
        assert out[0] == "user:42 False 1"  # the writer's key: the primary, which has the row
        assert out[1] == "user:7 True 0"  # another key: the replica, paused before the row
    finally:
        pg_cluster.resume_replay()
        replicated.close()
        cache.clear()


# -- docs -------------------------------------------------------------------------------------------------


def test_the_docs_python_examples_run_without_a_cluster() -> None:
    doc = (ROOT / "docs" / "db-replicas.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/db-replicas.md", "exec"), {})  # noqa: S102 - the docs' own examples


@pytest.mark.parametrize("url", [None, "sqlite:///app.db"])
def test_settings_with_replicas_and_no_postgresql_primary_are_one_problem_naming_the_fix(
    url: str | None,
) -> None:
    environ = {"BUTTRESS_DB__REPLICAS": f'["postgresql://app:{PASSWORD}@10.0.0.2:5432/app"]'}
    if url is not None:
        environ["BUTTRESS_DATABASE_URL"] = url
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, environ=environ)
    (problem,) = caught.value.problems
    assert problem.variable == "BUTTRESS_DB__REPLICAS"
    assert "PostgreSQL only" in problem.expected
    assert "BUTTRESS_DATABASE_URL" in problem.expected
    assert PASSWORD not in str(caught.value)
    environ["BUTTRESS_DATABASE_URL"] = "postgresql+psycopg://app@10.0.0.1:5432/app"
    assert load_settings(env_file=None, environ=environ).db.replicas == [
        f"postgresql://app:{PASSWORD}@10.0.0.2:5432/app"
    ]


@pytest.mark.postgres
@pytest.mark.usefixtures("isolated_settings")
def test_health_warns_about_a_dead_replica_without_making_the_service_unready(
    pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json as jsonlib

    from buttress.composition import health_registry
    from buttress.config import reset_settings

    monkeypatch.setenv("BUTTRESS_DATABASE_URL", pg_cluster.primary_url)
    monkeypatch.setenv("BUTTRESS_DB__REPLICAS", jsonlib.dumps([pg_cluster.standby_url]))
    reset_settings()
    registry = health_registry()
    try:
        healthy = registry.run_sync().to_dict()["checks"]
        assert healthy["database_replicas"][0]["status"] == "pass"
        pg_cluster.kill_standby()
        report = registry.run_sync().to_dict()
        checks = report["checks"]
        assert checks["database"][0]["status"] == "pass"
        assert checks["database_replicas"][0]["status"] == "warn"
        assert "replica1" in checks["database_replicas"][0]["output"]
        assert report["status"] != "fail"  # reads go to the primary meanwhile: not a reason to be unready
    finally:
        registry.close()
