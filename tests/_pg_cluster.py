"""A throwaway PostgreSQL 15 primary with a hot standby streaming from it, for the read-replica tests.

Two clusters on spare loopback ports in one temporary directory owned by the ``postgres`` OS user (the server
refuses to run as root, so under root every server binary runs through ``runuser -u postgres --``). The tests
read and steer replication through it: :meth:`PgCluster.current_lsn`, :meth:`PgCluster.wait_replayed`,
:meth:`PgCluster.pause_replay`, :meth:`PgCluster.kill_standby` (a real SIGKILL of the standby's postmaster)
and :meth:`PgCluster.restart_standby`. :meth:`PgCluster.stop` stops both servers and removes the directory.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from tests._harness import Harness
from tests._ports import free_port

PG_BIN = Path(os.environ.get("BUTTRESS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
_BINARIES = ("initdb", "pg_ctl", "postgres", "pg_basebackup")

# Settings for speed (no fsync, small buffers) and for streaming replication with trust on loopback only. TCP
# only: no Unix socket, whose lock file a killed postmaster would leave behind.
_PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
max_connections = 40
shared_buffers = 16MB
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 5
wal_keep_size = 64MB
hot_standby = on
wal_receiver_status_interval = 1s
logging_collector = off
"""
_HBA = """
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


def missing_reason() -> str | None:
    """Why the cluster cannot be built on this machine, or None when it can."""
    absent = [name for name in _BINARIES if not (PG_BIN / name).is_file()]
    if absent:
        return f"PostgreSQL server binaries are missing in {PG_BIN}: {', '.join(absent)}"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser is missing (needed to run PostgreSQL as the postgres user under root)"
    return None


class PgClusterError(RuntimeError):
    """A server of the throwaway cluster did not start or stop; the message carries its log's tail."""


def _wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll a real server condition with a bounded deadline (readiness, replay), never a fixed sleep."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {seconds:g}s")
        time.sleep(0.01)  # waiting for a real server, not a test sleep


def _process_gone(pid: int) -> bool:
    """True when the process no longer exists or is a zombie (a container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (a postmaster's backends and auxiliary processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class PgCluster(Harness):
    """A primary and a hot standby (``pg_basebackup -R``), both PostgreSQL 15, on their own loopback ports."""

    def __init__(self) -> None:
        reason = missing_reason()
        if reason is not None:
            raise PgClusterError(reason)
        self.root = Path(tempfile.mkdtemp(prefix="buttress-pg-"))
        self.primary_dir = self.root / "primary"
        self.standby_dir = self.root / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()
        while (
            self.standby_port == self.primary_port
        ):  # pragma: no cover - the OS handing out the same port twice
            self.standby_port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, PG_USER, PG_USER)
        self.root.chmod(0o700)

    # -- addresses -------------------------------------------------------------------------------------------

    @property
    def primary_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/postgres"

    @property
    def standby_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.standby_port}/postgres"

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """initdb the primary, start it, clone the standby with ``pg_basebackup -R`` and start it."""
        self._run(
            "initdb", "-D", str(self.primary_dir), "-U", PG_USER, "--auth=trust", "--no-sync", "-E", "UTF8"
        )
        with (self.primary_dir / "postgresql.conf").open("a") as conf:
            conf.write(_PRIMARY_CONF.format(port=self.primary_port))
        (self.primary_dir / "pg_hba.conf").write_text(_HBA)
        self._pg_ctl_start(self.primary_dir, self.primary_url)
        self._run(
            "pg_basebackup",
            "-D",
            str(self.standby_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary_port),
            "-U",
            PG_USER,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        with (self.standby_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.standby_port}\n"
            )  # the copy carries the primary's port: the later line wins
        self.restart_standby()

    def restart_standby(self) -> None:
        """Start the standby (again, after :meth:`kill_standby`) and wait until it accepts connections."""
        self._pg_ctl_start(self.standby_dir, self.standby_url)

    def kill_standby(self) -> None:
        """SIGKILL the standby's postmaster, as a crash would, and wait until its processes are gone.

        The orphaned backends notice the postmaster's death and exit on their own; waiting for them keeps a
        later :meth:`restart_standby` from finding its shared memory still in use.
        """
        pid = self._postmaster_pid(self.standby_dir)
        if pid is None:
            return
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        for process in (pid, *children):
            _wait_until(functools.partial(_process_gone, process), 30, f"standby process {process} exiting")
        # A container whose init never reaps leaves the dead postmaster a zombie, and PostgreSQL takes a
        # zombie's pid in the lock file for a live postmaster: the file of a dead postmaster is stale.
        (self.standby_dir / "postmaster.pid").unlink(missing_ok=True)

    def standby_running(self) -> bool:
        pid = self._postmaster_pid(self.standby_dir)
        return pid is not None and not _process_gone(pid)

    def stop(self) -> None:
        """Stop both servers (immediate mode) and remove the directory; safe to call more than once."""
        for data in (self.standby_dir, self.primary_dir):
            pid = self._postmaster_pid(data)
            if pid is not None and not _process_gone(pid):
                self._run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w", check=False)
                if not _process_gone(pid):  # pragma: no cover - pg_ctl failed to stop it
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def reset(self) -> None:
        """Bring the pair back to streaming after a test paused replay or killed the standby."""
        if not self.standby_running():
            self.restart_standby()
        self.resume_replay()
        self.wait_replayed()

    # -- replication -----------------------------------------------------------------------------------------

    def primary_query(self, sql: str, *params: object) -> object:
        """One statement on the primary (autocommit): the first column of the first row, if any."""
        return self._query(self.primary_url, sql, params)

    def standby_query(self, sql: str, *params: object) -> object:
        """One statement on the standby (autocommit): the first column of the first row, if any."""
        return self._query(self.standby_url, sql, params)

    def current_lsn(self) -> str:
        """The primary's ``pg_current_wal_lsn()``, e.g. ``'0/3000148'``."""
        return str(self.primary_query("SELECT pg_current_wal_lsn()::text"))

    def replay_lsn(self) -> str:
        """The standby's ``pg_last_wal_replay_lsn()``."""
        return str(self.standby_query("SELECT pg_last_wal_replay_lsn()::text"))

    def receive_lsn(self) -> str:
        """The standby's ``pg_last_wal_receive_lsn()``: WAL it holds, replayed or not."""
        return str(self.standby_query("SELECT pg_last_wal_receive_lsn()::text"))

    def replayed(self, lsn: str) -> bool:
        return bool(self.standby_query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", lsn))

    def received(self, lsn: str) -> bool:
        return bool(self.standby_query("SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", lsn))

    def wait_replayed(self, lsn: str | None = None, seconds: float = 15.0) -> str:
        """Wait until the standby has replayed ``lsn`` (default: the primary's current LSN); return it."""
        target = lsn if lsn is not None else self.current_lsn()
        _wait_until(lambda: self.replayed(target), seconds, f"the standby replaying {target}")
        return target

    def wait_received(self, lsn: str, seconds: float = 15.0) -> None:
        """Wait until the standby's WAL receiver holds ``lsn`` (it arrived, whether replayed or not)."""
        _wait_until(lambda: self.received(lsn), seconds, f"the standby receiving {lsn}")

    def pause_replay(self) -> None:
        """``pg_wal_replay_pause()`` on the standby: WAL still arrives, nothing new becomes visible."""
        self.standby_query("SELECT pg_wal_replay_pause()")

    def wait_paused(self, seconds: float = 15.0) -> None:
        """Wait until replay has stopped (``'paused'``): a requested pause takes hold at the next record."""
        _wait_until(lambda: self.replay_pause_state() == "paused", seconds, "the standby pausing replay")

    def resume_replay(self) -> None:
        """``pg_wal_replay_resume()`` on the standby."""
        self.standby_query("SELECT pg_wal_replay_resume()")

    def replay_pause_state(self) -> str:
        """``pg_get_wal_replay_pause_state()``: ``'not paused'``, ``'pause requested'`` or ``'paused'``."""
        return str(self.standby_query("SELECT pg_get_wal_replay_pause_state()"))

    def wait_standby_statement(self, fragment: str, seconds: float = 15.0) -> None:
        """Wait until a statement containing ``fragment`` is running on the standby (another session's)."""
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
            "AND position(%s in query) > 0"
        )
        _wait_until(lambda: bool(self.standby_query(sql, fragment)), seconds, f"{fragment!r} on the standby")

    # -- internals -------------------------------------------------------------------------------------------

    @staticmethod
    def _query(url: str, sql: str, params: tuple[object, ...]) -> object:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql.encode(), params or None)
            if cursor.description is None:
                return None
            row = cursor.fetchone()
            return None if row is None else row[0]

    def _command(self, binary: str, *args: str) -> list[str]:
        command = [str(PG_BIN / binary), *args]
        return ["runuser", "-u", PG_USER, "--", *command] if self._as_postgres else command

    def _run(self, binary: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._command(binary, *args),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise PgClusterError(f"{binary} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        return result

    def _pg_ctl_start(self, data: Path, url: str) -> None:
        log = data.with_suffix(".log")
        result = self._run("pg_ctl", "start", "-D", str(data), "-l", str(log), "-w", "-t", "60", check=False)
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stderr
            raise PgClusterError(f"PostgreSQL in {data.name} did not start: {tail}")

        def accepts() -> bool:
            try:
                with psycopg.connect(url, connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                return False

        _wait_until(accepts, 30, f"PostgreSQL in {data.name} accepting connections")

    @staticmethod
    def _postmaster_pid(data: Path) -> int | None:
        try:
            first = (data / "postmaster.pid").read_text().split("\n", 1)[0]
        except (FileNotFoundError, PermissionError):
            return None
        return int(first) if first.strip().isdigit() else None
