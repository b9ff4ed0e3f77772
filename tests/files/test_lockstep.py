"""SQLite and PostgreSQL catalogs driven by the same random operations give the same answers."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import text

from buttress.clock import FakeClock
from buttress.config import FilesSettings
from buttress.db import Database
from buttress.errors import ButtressError
from buttress.files import FileStore, LocalBlobStore
from tests._fresh_db import fresh_postgres
from tests.files.conftest import TABLES, migrate

OWNERS = st.sampled_from([None, "ana", "bo"])


@pytest.fixture(scope="module")
def both_urls(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    sqlite = f"sqlite:///{tmp_path_factory.mktemp('lockstep') / 'files.db'}"
    migrate(sqlite)
    with fresh_postgres(database_url, "buttress_files_lockstep") as postgres:
        migrate(postgres)
        yield sqlite, postgres


def test_sqlite_and_postgresql_agree(both_urls: tuple[str, str]) -> None:
    databases = [Database(url) for url in both_urls]

    class Lockstep(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.folder = tempfile.TemporaryDirectory()
            self.clock = FakeClock()
            self.stores: list[FileStore] = []
            for index, db in enumerate(databases):
                with db.engine.begin() as connection:
                    for table in TABLES:
                        connection.execute(text(f"DELETE FROM {table}"))
                self.stores.append(
                    FileStore(
                        LocalBlobStore(Path(self.folder.name) / str(index)),
                        db=db,
                        settings=FilesSettings(quota=40_000, owner_quota=15_000, max_size=12_000),
                        clock=self.clock,
                    )
                )
            self.ids: list[list[str]] = []

        def both(self, call: str, *args: object, **kwargs: object) -> list[object]:
            answers: list[object] = []
            for store in self.stores:
                try:
                    answers.append(getattr(store, call)(*args, **kwargs))
                except ButtressError as error:
                    answers.append((type(error).__name__, error.status, error.context))
            return answers

        @rule(owner=OWNERS, size=st.integers(0, 14_000), tag=st.sampled_from([None, "raw", "cut"]))
        def save(self, owner: str | None, size: int, tag: str | None) -> None:
            tags = [tag] if tag else []
            answers = self.both("save", b"w" * size, name=f"{size}.txt", owner=owner, tags=tags)
            kept = [answer for answer in answers if not isinstance(answer, tuple)]
            if kept:
                assert len(kept) == 2, answers
                self.ids.append([answer.id for answer in kept])  # type: ignore[attr-defined]
                first, second = kept
                assert (first.size, first.sha256, first.tags) == (second.size, second.sha256, second.tags)  # type: ignore[attr-defined]
            else:
                assert answers[0] == answers[1]
            self.clock.advance(1)

        @rule(pick=st.integers(0, 1000), action=st.sampled_from(["delete", "archive", "restore", "stat"]))
        def change(self, pick: int, action: str) -> None:
            if not self.ids:
                return
            pair = self.ids[pick % len(self.ids)]
            answers = [
                self._one(store, action, file_id) for store, file_id in zip(self.stores, pair, strict=True)
            ]
            assert answers[0] == answers[1]
            self.clock.advance(1)

        @staticmethod
        def _one(store: FileStore, action: str, file_id: str) -> object:
            try:
                found = getattr(store, action)(file_id)
            except ButtressError as error:
                return type(error).__name__
            return found if isinstance(found, bool) else (found.state, found.size, found.sha256)

        @invariant()
        def same_counters(self) -> None:
            for owner in (None, "ana", "bo"):
                sqlite, postgres = (store.usage(owner) for store in self.stores)
                assert (sqlite.used, sqlite.files) == (postgres.used, postgres.files)
                assert sqlite.reserved == postgres.reserved == 0  # nothing in flight between operations
            listings = [[(f.name, f.state, f.owner) for f in store.list()] for store in self.stores]
            assert listings[0] == listings[1]

        def teardown(self) -> None:
            for store in self.stores:
                assert store.sweep().reservations == 0
            assert not list(Path(self.folder.name).rglob("*.part"))
            self.folder.cleanup()

    try:
        run_state_machine_as_test(
            Lockstep,
            settings=settings(
                max_examples=15,
                stateful_step_count=15,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        for db in databases:
            db.close()
