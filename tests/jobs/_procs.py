"""The harness of the multi-process job tests: a fresh database, worker processes, and what they did.

``procs`` (a fixture, parametrized over SQLite and PostgreSQL) gives each test a database nothing else
touches (a SQLite file in ``tmp_path``, or a PostgreSQL database created for the test and dropped after),
a ``Jobs`` on it for the test process, and :meth:`Procs.start` for real worker processes that the test
can SIGKILL, SIGTERM, SIGSTOP and SIGCONT. Every process it starts leads a session of its own, so the
teardown kills exactly those processes (and a ``process=True`` job's subprocess) by their group id.

A trigger on the jobs table writes a row to ``proc_completions`` for every UPDATE that sets a job's
status to ``succeeded``: a job completed twice shows up as two rows, whatever the worker believed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
from sqlalchemy import text
from tests._fresh_db import fresh_postgres
from tests.jobs._proc_jobs import LOG_ENV, Line, read_log

from buttress.config import JobsSettings
from buttress.db import Database
from buttress.jobs import Jobs

T = TypeVar("T")

WORKER = Path(__file__).with_name("_proc_worker.py")
ROOT = Path(__file__).resolve().parents[2]

_TRIGGER = {
    "postgresql": [
        "CREATE TABLE proc_completions (job_id BIGINT NOT NULL, token INTEGER NOT NULL)",
        (
            "CREATE FUNCTION proc_note_completion() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO proc_completions VALUES (NEW.id, NEW.lease_token); RETURN NEW; END $$"
        ),
        (
            "CREATE TRIGGER proc_completion AFTER UPDATE OF status ON buttress_jobs FOR EACH ROW "
            "WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION proc_note_completion()"
        ),
    ],
    "sqlite": [
        "CREATE TABLE proc_completions (job_id INTEGER NOT NULL, token INTEGER NOT NULL)",
        (
            "CREATE TRIGGER proc_completion AFTER UPDATE OF status ON buttress_jobs FOR EACH ROW "
            "WHEN NEW.status = 'succeeded' BEGIN "
            "INSERT INTO proc_completions VALUES (NEW.id, NEW.lease_token); END"
        ),
    ],
}


def wait_for(condition: Callable[[], T], timeout: float, what: str, every: float = 0.01) -> T:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(every)


@dataclass
class Proc:
    """One worker process the test started."""

    popen: subprocess.Popen[bytes]
    name: str
    stderr: IO[bytes]
    stderr_path: Path
    started: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the worker (not a subprocess of its own: that one is left as a real crash leaves it)."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_exit(self, timeout: float) -> int:
        """The exit code; fails the test when the process is still running after ``timeout`` s."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.name} (pid {self.pid}) still runs after {timeout} s")

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")


class Procs:
    """A database, a ``Jobs`` on it, worker processes and their job logs."""

    def __init__(self, backend: str, url: str, tmp: Path) -> None:
        self.backend = backend
        self.url = url
        self.tmp = tmp
        self.logs = tmp / "joblog"
        self.logs.mkdir()
        self.db = Database(url)
        self.jobs = Jobs(self.db, settings=JobsSettings(lease=2))
        self.jobs.ensure_schema()
        with self.db.engine.begin() as connection:
            for statement in _TRIGGER[backend]:
                connection.execute(text(statement))
        self.procs: list[Proc] = []
        self._names = 0

    # -- worker processes ----------------------------------------------------------------------------

    def start(
        self,
        *,
        concurrency: int = 4,
        queues: list[str] | None = None,
        tasks: list[str] | None = None,
        env: dict[str, str] | None = None,
        db: dict[str, Any] | None = None,
        **settings: Any,
    ) -> Proc:
        """Start a worker process with these ``JobsSettings`` (and ``db``: its ``DbSettings``).

        Defaults here: a 2-second lease, and no migration check (the harness migrated the database; not
        importing alembic saves a second of CPU per start, which counts when workers restart every second).
        """
        settings.setdefault("lease", 2)
        settings.setdefault("auto_migrate", False)
        options = {"settings": settings, "db": db or {}, "concurrency": concurrency, "queues": queues}
        options["tasks"] = tasks
        self._names += 1
        name = f"w{self._names}"
        stderr_path = self.tmp / f"{name}.stderr"
        stderr = stderr_path.open("wb")
        environment = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BUTTRESS_") or k.startswith("BUTTRESS_TEST")
        }
        environment[LOG_ENV] = str(self.logs)
        environment.update(env or {})
        popen = subprocess.Popen(
            [sys.executable, str(WORKER), self.url, json.dumps(options)],
            cwd=self.tmp,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(popen, name, stderr, stderr_path)
        self.procs.append(proc)
        return proc

    def wait_registered(self, proc: Proc, timeout: float = 30.0) -> None:
        """Until ``proc``'s worker has registered itself in the database (it leases jobs from then on)."""

        def registered() -> bool:
            if not proc.alive():
                pytest.fail(f"worker {proc.name} exited with {proc.popen.returncode}:\n{proc.log()}")
            return bool(
                self.scalar("SELECT count(*) FROM buttress_job_workers WHERE pid = :pid", pid=proc.pid)
            )

        wait_for(registered, timeout, f"worker {proc.name} registering", every=0.05)

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.popen.wait(10)
            proc.stderr.close()
        self.db.close()

    # -- reading -----------------------------------------------------------------------------------------

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.db.engine.connect() as connection:
            return list(connection.execute(text(sql), params).all())

    def execute(self, sql: str, **params: Any) -> None:
        with self.db.engine.begin() as connection:
            connection.execute(text(sql), params)

    def status(self, job_id: int) -> str:
        return str(self.scalar("SELECT status FROM buttress_jobs WHERE id = :id", id=job_id))

    def log(self) -> list[Line]:
        return read_log(self.logs)

    def lines(self, kind: str, job_id: int | None = None) -> list[Line]:
        return [
            line for line in self.log() if line.kind == kind and (job_id is None or line.job_id == job_id)
        ]

    def no_open_transactions(self, pid: int) -> bool:
        """Whether the stopped worker ``pid`` holds no transaction (its locks would stall everyone else)."""
        if self.backend == "sqlite":
            raw = self.db.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA busy_timeout = 200")
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                except Exception:
                    return False
                cursor.execute("ROLLBACK")
                return True
            finally:
                raw.close()
        held = self.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
        )
        return int(held) == 0


@pytest.fixture(params=["sqlite", "postgresql"])
def procs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Procs]:
    """A database of its own for this test, a ``Jobs`` on it, and worker processes on demand."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'jobs.db'}"
        else:
            url = stack.enter_context(
                fresh_postgres(request.getfixturevalue("database_url"), "buttress_procs")
            )
        harness = Procs(request.param, url, tmp_path)
        try:
            yield harness
        finally:
            harness.close()
