"""buttress's own schema: alembic revisions under a lock, in one transaction, apart from the app's alembic."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text

from buttress.config import DbSettings
from buttress.db import VERSION_TABLE, Database, MigrationStatus
from buttress.errors import ValidationError
from tests._fresh_db import fresh_postgres
from tests.db._subject import KINDS

HERE = Path(__file__).parent
OK = HERE / "revisions_ok"
BAD = HERE / "revisions_bad"


@pytest.fixture(params=KINDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nothing has touched: a new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with fresh_postgres(request.getfixturevalue("database_url"), "buttress_mig") as url:
        yield url


def tables(db: Database) -> set[str]:
    with db.engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_a_fresh_database_upgrades_to_the_head_once(fresh_url: str) -> None:
    db = Database(fresh_url)
    try:
        before = db.migration_status()
        assert before == MigrationStatus(current=None, head="0003", pending=("0001", "0002", "0003"))
        assert not before.up_to_date
        after = db.upgrade()
        assert after == MigrationStatus(current="0003", head="0003", pending=())
        assert after.up_to_date
        assert VERSION_TABLE in tables(db)
        assert db.upgrade() == after  # a second upgrade finds nothing to do
    finally:
        db.close()


def test_the_async_upgrade_runs_the_same_revisions(fresh_url: str) -> None:
    db = Database(fresh_url)

    async def run() -> MigrationStatus:
        try:
            return await db.aupgrade(locations=[OK])
        finally:
            await db.aclose()

    status = asyncio.run(run())
    assert status == MigrationStatus(current="t0002", head="t0002", pending=())
    assert {"mig_widgets", VERSION_TABLE} <= tables(db)
    db.close()


def test_the_apps_own_alembic_version_is_left_alone(fresh_url: str) -> None:
    db = Database(fresh_url)
    try:
        with db.session() as session:
            session.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            session.execute(text("INSERT INTO alembic_version VALUES ('app_rev_7')"))
        db.upgrade()
        with db.session() as session:
            assert session.execute(text("SELECT version_num FROM alembic_version")).all() == [("app_rev_7",)]
            assert session.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [("0003",)]
    finally:
        db.close()


def test_a_failing_revision_leaves_nothing_half_made(fresh_url: str) -> None:
    db = Database(fresh_url)
    try:
        db.upgrade()
        with pytest.raises(Exception, match="no_such_table_at_all"):
            db.upgrade(locations=[BAD])
        assert "mig_half" not in tables(db)
        assert db.migration_status(locations=[BAD]).current == "0003"
    finally:
        db.close()


def test_later_revisions_chain_onto_the_baseline(fresh_url: str) -> None:
    db = Database(fresh_url)
    try:
        assert db.upgrade("0003", locations=[OK]).pending == ("t0002",)
        assert "mig_widgets" not in tables(db)
        assert db.upgrade(locations=[OK]).current == "t0002"
        assert "mig_widgets" in tables(db)
    finally:
        db.close()


CHILD = """
import sys
from buttress.db import Database
db = Database(sys.argv[1])
try:
    db.upgrade(locations=[sys.argv[2]])
finally:
    db.close()
"""


def test_processes_upgrading_together_run_each_revision_once(fresh_url: str) -> None:
    """Four processes race to upgrade; the test revision's CREATE TABLE would fail if it ran twice."""
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, fresh_url, str(OK)], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [child.communicate(timeout=120)[1] for child in children]
    assert [child.returncode for child in children] == [0, 0, 0, 0], errors
    db = Database(fresh_url)
    try:
        assert db.migration_status(locations=[OK]).current == "t0002"
        assert "mig_widgets" in tables(db)
    finally:
        db.close()


def _holding_the_upgrade_lock(url: str) -> tuple[Database, Connection]:
    """Another process's upgrade in progress: SQLite's write lock, or PostgreSQL's advisory lock, held."""
    holder = Database(url)
    connection = holder.engine.connect()
    if holder.backend == "sqlite":
        connection.connection.cursor().execute("BEGIN IMMEDIATE")
    else:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": 0x6275_7474_7265_7373})
    return holder, connection


def test_a_database_at_the_head_is_not_locked_to_find_nothing_to_do(fresh_url: str) -> None:
    """Every process calls upgrade at start; once the schema is there, none of them queues on the lock."""
    db = Database(fresh_url)
    db.upgrade()
    holder, held = _holding_the_upgrade_lock(fresh_url)
    outcome: list[MigrationStatus] = []
    checker = threading.Thread(target=lambda: outcome.append(db.upgrade()))
    try:
        checker.start()
        checker.join(timeout=20)
        assert not checker.is_alive(), "an up-to-date upgrade waited for the lock"
        assert outcome == [MigrationStatus(current="0003", head="0003", pending=())]
    finally:
        held.close()
        holder.close()
        checker.join()
        db.close()


def test_an_sqlite_upgrade_waits_for_another_past_the_busy_timeout(tmp_path: Path) -> None:
    """A second process waits for the first's upgrade, as on PostgreSQL, not only ``busy_timeout`` seconds."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    db = Database(url, settings=DbSettings(busy_timeout=0.05))
    holder, held = _holding_the_upgrade_lock(url)
    outcome: list[MigrationStatus | BaseException] = []

    def upgrade() -> None:
        try:
            outcome.append(db.upgrade())
        except BaseException as exc:  # the test reports what the thread met
            outcome.append(exc)

    waiter = threading.Thread(target=upgrade)
    try:
        waiter.start()
        waiter.join(timeout=0.5)  # ten busy timeouts: the old code had failed with "database is locked"
        assert waiter.is_alive(), outcome
    finally:
        held.close()  # the holder ends its "upgrade" without writing
        holder.close()
    waiter.join(timeout=60)
    assert outcome == [MigrationStatus(current="0003", head="0003", pending=())]
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 50  # put back on the pooled one
    db.close()


@pytest.mark.parametrize("revision", ["", "nope", None, 3])
def test_an_unknown_revision_is_refused_before_anything_runs(fresh_url: str, revision: object) -> None:
    db = Database(fresh_url)
    try:
        with pytest.raises(ValidationError, match="revision") as caught:
            db.upgrade(revision)  # type: ignore[arg-type]
        assert caught.value.field == "revision"
        assert VERSION_TABLE not in tables(db)
    finally:
        db.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_upgrade_sql_is_rendered_for_review_without_a_connection(kind: str) -> None:
    db = Database("sqlite:///never-opened.db" if kind == "sqlite" else "postgresql://nobody@127.0.0.1:9/none")
    sql = db.upgrade_sql()
    assert f"CREATE TABLE {VERSION_TABLE}" in sql
    assert "INSERT INTO buttress_alembic_version (version_num) VALUES ('0001')" in sql
    assert not Path("never-opened.db").exists()


@pytest.mark.usefixtures("isolated_settings")
def test_the_cli_upgrades_the_configured_database(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from buttress.cli import app
    from buttress.config import reset_settings

    monkeypatch.setenv("BUTTRESS_DATABASE_URL", fresh_url)
    reset_settings()
    runner = CliRunner()
    pending = runner.invoke(app, ["db", "status", "--json"])
    assert (pending.exit_code, json.loads(pending.stdout)) == (
        2,
        {"current": None, "head": "0003", "pending": ["0001", "0002", "0003"]},
    )
    review = runner.invoke(app, ["db", "upgrade", "--sql"])
    assert review.exit_code == 0
    assert f"CREATE TABLE {VERSION_TABLE}" in review.stdout
    done = runner.invoke(app, ["db", "upgrade"])
    assert done.exit_code == 0
    assert done.stdout.endswith(": at 0003, the head: up to date\n")
    assert runner.invoke(app, ["db", "status"]).exit_code == 0
    refused = runner.invoke(app, ["db", "upgrade", "nope"])
    assert refused.exit_code == 1
    assert "revision 'nope' is not one of buttress's revisions" in refused.stdout


@pytest.mark.usefixtures("isolated_settings")
def test_the_cli_masks_the_password_of_an_unreachable_database(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from buttress.cli import app
    from buttress.config import reset_settings

    monkeypatch.setenv("BUTTRESS_DATABASE_URL", "postgresql://app:hunter2-secret@127.0.0.1:9/none")
    reset_settings()
    result = CliRunner().invoke(app, ["db", "status"])
    assert result.exit_code == 1
    assert "cannot be reached" in result.stdout
    assert "hunter2-secret" not in result.stdout
