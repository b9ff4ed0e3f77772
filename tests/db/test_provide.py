"""The default container's Database and the composed health registry's database check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from buttress.composition import health_registry, register_defaults
from buttress.container import Container, get_container, reset_container
from buttress.db import Database
from tests._ports import free_port

pytestmark = pytest.mark.usefixtures("isolated_settings")

PASSWORD = "pr0vide-s3cret"


def _database_check(monkeypatch: pytest.MonkeyPatch, url: str) -> dict[str, Any]:
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", url)
    registry = health_registry()
    try:
        assert next(check for check in registry if check.name == "database").critical
        checks: dict[str, Any] = registry.run_sync().to_dict()["checks"]
        assert [name for name in checks if name.startswith("database")] == ["database"]
        return dict(checks["database"][0])
    finally:
        registry.close()


def test_the_default_container_builds_one_database_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    db = get_container().resolve(Database)
    assert get_container().resolve(Database) is db
    assert db.backend == "sqlite"
    assert db.info()["url"].endswith("app.db")
    other = Container()
    register_defaults(other)
    assert other.resolve(Database) is not db
    assert other.resolve(Database) is other.resolve(Database)
    other.close()


def test_reset_closes_the_database_and_the_next_resolve_builds_another() -> None:
    db = get_container().resolve(Database)  # no URL: the SQLite file in the (temporary) working directory
    with db.session() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
    pool = db.engine.pool
    assert pool.checkedin() == 1
    reset_container()
    assert pool.checkedin() == 0
    assert db.engine.pool is not pool  # disposed: SQLAlchemy swapped in a fresh, empty pool
    assert get_container().resolve(Database) is not db


def test_the_database_check_passes_on_a_sqlite_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _database_check(monkeypatch, f"sqlite:///{tmp_path}/health.db")["status"] == "pass"
    assert (tmp_path / "health.db").exists()


def test_the_database_check_fails_on_a_closed_postgresql_port_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = _database_check(monkeypatch, f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/app")
    assert check["status"] == "fail"
    assert check["output"].startswith("BackendUnavailable: ")
    assert PASSWORD not in str(check)


def test_no_database_check_without_a_database_url() -> None:
    registry = health_registry()
    try:
        assert "database" not in [check.name for check in registry]
    finally:
        registry.close()


@pytest.mark.parametrize(
    "code",
    [
        "import buttress",
        "import buttress.composition",
        "from buttress.cache import get_cache\nget_cache()",
    ],
)
def test_nothing_imports_sqlalchemy_until_the_database_is_asked_for(code: str) -> None:
    probe = f"{code}\nimport sys\nprint('sqlalchemy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_the_db_extra_the_defaults_register_and_health_names_the_extra() -> None:
    probe = """
import importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] == "sqlalchemy":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
from buttress._extras import MissingExtra
from buttress.composition import health_registry, register_defaults
from buttress.config import load_settings
from buttress.container import Container

container = Container()
register_defaults(container)
settings = load_settings(env_file=None, environ={"BUTTRESS_DATABASE_URL": "sqlite:///never.db"})
try:
    health_registry(settings, container)
except MissingExtra as error:
    print(error)
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'buttress[db]'" in result.stdout


def test_a_scope_has_one_session_and_rolls_back_what_it_did_not_commit(tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    container = get_container()
    db = container.resolve(Database)
    with db.session() as session:
        session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    with container.scope() as scope:
        first = scope.resolve(Session)
        assert container.resolve(Session) is first  # one session per scope, found through the context
        first.execute(text("INSERT INTO notes (body) VALUES ('kept')"))
        first.commit()
        first.execute(text("INSERT INTO notes (body) VALUES ('dropped')"))
    with container.scope() as scope:
        second = scope.resolve(Session)
        assert second is not first
        assert second.bind is db.scoped_engine  # the database's pool, errors translated
        assert second.execute(text("SELECT body FROM notes")).scalars().all() == ["kept"]
    assert db.engine.pool.checkedout() == 0  # the scopes returned their connections


def test_an_async_scope_has_one_async_session_closed_with_it() -> None:
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession

    container = get_container()

    async def run() -> list[str]:
        db = await container.aresolve(Database)
        async with db.asession() as session:
            await session.execute(text("CREATE TABLE marks (id INTEGER PRIMARY KEY, label TEXT)"))
        async with container.scope() as scope:
            session = await scope.aresolve(AsyncSession)
            assert await container.aresolve(AsyncSession) is session
            await session.execute(text("INSERT INTO marks (label) VALUES ('a')"))
            await session.commit()
            await session.execute(text("INSERT INTO marks (label) VALUES ('b')"))
        async with db.asession() as session:
            labels = list((await session.execute(text("SELECT label FROM marks"))).scalars())
        await container.aclose()
        return labels

    assert asyncio.run(run()) == ["a"]


def test_a_session_outside_a_scope_is_refused_with_the_fix() -> None:
    from sqlalchemy.orm import Session

    from buttress.errors import ScopeRequired

    with pytest.raises(ScopeRequired, match="scope"):
        get_container().resolve(Session)


def test_a_scoped_sessions_errors_are_buttress_errors_and_db_session_still_retries() -> None:
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from buttress.errors import ConflictError

    container = get_container()
    db = container.resolve(Database)
    with db.session() as session:
        session.execute(text("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
        session.execute(text("INSERT INTO tags (name) VALUES ('kept')"))
    with container.scope() as scope:
        scoped = scope.resolve(Session)
        with pytest.raises(ConflictError) as caught:
            scoped.execute(text("INSERT INTO tags (name) VALUES ('kept')"))
        assert caught.value.context["constraint"] == "tags.name"

    async def run() -> None:
        async with container.scope() as scope:
            scoped = await scope.aresolve(AsyncSession)
            with pytest.raises(ConflictError):
                await scoped.execute(text("INSERT INTO tags (name) VALUES ('kept')"))

    asyncio.run(run())
    assert db.transaction(lambda s: s.execute(text("SELECT count(*) FROM tags")).scalar()) == 1
