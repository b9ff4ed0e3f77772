"""A throwaway PgBouncer in transaction pooling mode on a spare loopback port, in front of a real PostgreSQL.

Its ini and userlist live in a directory of their own. Every database name is forwarded (the ``*`` entry),
so databases a test creates are reachable through it at once. PgBouncer refuses to run as root: as root
it is started with ``-u`` (the ``postgres`` user, else ``nobody``), its directory made readable to them.
No ``ignore_startup_parameters``: buttress must send nothing a pooler cannot take.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests._harness import Harness
from tests._ports import free_port

__all__ = ["PgBouncer", "missing_reason"]

_BINARIES = ("pgbouncer", "/usr/sbin/pgbouncer")


def _binary() -> str | None:
    for name in _BINARIES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def missing_reason() -> str | None:
    """Why PgBouncer cannot run here, or None when it can."""
    return None if _binary() is not None else "pgbouncer is not installed (apt-get install pgbouncer)"


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["-u", user]
    raise RuntimeError("pgbouncer will not run as root and neither postgres nor nobody exists")


class PgBouncer(Harness):
    """``pgbouncer`` forwarding every database of ``server_url``'s server, ``pool_mode = transaction``."""

    def __init__(self, server_url: str, *, pool_size: int = 10) -> None:
        binary = _binary()
        if binary is None:
            raise RuntimeError(missing_reason())
        self.binary = binary
        self.server = urlsplit(server_url)
        self.port = free_port()
        self.pool_size = pool_size
        self.directory = Path(tempfile.mkdtemp(prefix="buttress-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, direct_url: str) -> str:
        """``direct_url`` (a database on the same server) pointed at this PgBouncer instead."""
        parts = urlsplit(direct_url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    @property
    def log(self) -> str:
        """What PgBouncer wrote so far (for a failing test's message)."""
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _write_config(self) -> Path:
        host, port = self.server.hostname or "127.0.0.1", self.server.port or 5432
        user = self.server.username or "postgres"
        (self.directory / "userlist.txt").write_text(f'"{user}" ""\n')
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={host} port={port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.directory / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\n"
            "max_client_conn = 500\n"
            "server_lifetime = 3600\n"
            f"logfile = {self.directory / 'pgbouncer.log'}\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
        )
        os.chmod(self.directory, 0o777)  # noqa: S103 - the -u user writes its log here; a test's own dir
        for path in self.directory.iterdir():
            os.chmod(path, 0o644)
        return ini

    def start(self, timeout: float = 10.0) -> None:
        """Start PgBouncer and wait until a client gets an answer through it."""
        ini = self._write_config()
        self.process = subprocess.Popen(
            [self.binary, *_run_as(), str(ini)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = self.url(urlunsplit(self.server))
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}: {self.log[-2000:]}")
            try:
                with psycopg.connect(probe, connect_timeout=1, prepare_threshold=None) as connection:
                    connection.execute("SELECT 1")
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.02)  # waiting for a real server to listen, not a test sleep
            else:
                return

    def stop(self) -> None:
        """Kill PgBouncer (its server connections close with it)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        shutil.rmtree(self.directory, ignore_errors=True)
