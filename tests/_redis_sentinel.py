"""A throwaway Sentinel deployment: a primary, one replica and three sentinels on spare loopback ports.

``kill_primary()`` SIGKILLs the primary, ``switchover()`` asks for a planned failover (``SENTINEL
FAILOVER``); ``wait_for_failover()`` returns once the sentinels name the replica as the new primary, and
``wait_for_demotion()`` once a switched-over primary answers as a replica. Every process is killed on
``stop()``. Skipped when redis-server is missing, unless BUTTRESS_REQUIRE_SERVICES is set (then it fails).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests._harness import Harness, kill_all
from tests._ports import free_port
from tests.conftest import services_required

SERVICE = "buttress"
STARTUP = 30.0  # upper bound for the sentinels to know the primary, the replica and each other
FAILOVER = 30.0  # upper bound for the sentinels to promote the replica


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (needed for the Sentinel tests)"
        if services_required():
            pytest.fail(
                message + " and BUTTRESS_REQUIRE_SERVICES=1 turns the skip into a failure", pytrace=False
            )
        pytest.skip(message)
    return binary


def _until(condition: object, timeout: float, what: str) -> None:
    """Poll ``condition()`` (a real server's state) until it is true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():  # type: ignore[operator]
                return
        except (redis.exceptions.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.05)  # waiting for real servers, not a test sleep


class SentinelDeployment(Harness):
    """redis-server processes: ``primary``/``replica`` data nodes and three sentinels, monitored as SERVICE.

    ``password`` protects the data nodes (``requirepass``/``masterauth``, ``auth-pass`` in the sentinels);
    ``sentinel_password`` protects the sentinels (``requirepass`` and ``sentinel-pass``).
    """

    def __init__(self, directory: Path, *, password: str = "", sentinel_password: str = "") -> None:
        self.binary = _binary()
        self.directory = directory
        self.password = password
        self.sentinel_password = sentinel_password
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.primary_port = self.data_ports[0]

    def url(self, db: int = 0, scheme: str = "redis+sentinel") -> str:
        """The Sentinel URL of this deployment, with its passwords."""
        auth = f":{self.password}@" if self.password else ""
        sentinels = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"{scheme}://{auth}{sentinels}/{SERVICE}/{db}{query}"

    def _spawn(self, port: int, arguments: list[str]) -> None:
        self.processes[port] = subprocess.Popen(
            [*arguments],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _data_node(self, port: int, replica_of: int | None) -> None:
        command = [
            self.binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        command += ["--dir", str(self.directory)]
        if self.password:
            command += ["--requirepass", self.password, "--masterauth", self.password]
        if replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._spawn(port, command)

    def _sentinel(self, port: int) -> None:
        config = self.directory / f"sentinel-{port}.conf"  # a sentinel rewrites its file: one each
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            "sentinel resolve-hostnames no",
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2",
            f"sentinel down-after-milliseconds {SERVICE} 1000",
            f"sentinel failover-timeout {SERVICE} 5000",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {SERVICE} {self.password}")
        if self.sentinel_password:
            lines += [
                f"requirepass {self.sentinel_password}",
                f"sentinel sentinel-pass {self.sentinel_password}",
            ]
        config.write_text("\n".join(lines) + "\n")
        self._spawn(port, [self.binary, str(config), "--sentinel"])

    def data_client(self, port: int) -> redis.Redis:
        return redis.Redis(
            port=port, password=self.password or None, socket_timeout=1, socket_connect_timeout=1
        )

    def sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis(
            port=port, password=self.sentinel_password or None, socket_timeout=1, socket_connect_timeout=1
        )

    def start(self) -> None:
        primary, replica = self.data_ports
        self._data_node(primary, None)
        self._data_node(replica, primary)
        for port in self.sentinel_ports:
            self._sentinel(port)
        with self.data_client(replica) as client:
            _until(
                lambda: client.info("replication")["master_link_status"] == "up", STARTUP, "replica in sync"
            )
        for port in self.sentinel_ports:
            with self.sentinel_client(port) as client:

                def knows_all(client: redis.Redis = client) -> bool:
                    state: Any = client.sentinel_master(SERVICE)
                    return bool(state["num-slaves"] >= 1 and state["num-other-sentinels"] >= 2)

                _until(knows_all, STARTUP, f"sentinel {port} to know the primary, the replica and its peers")

    def primary(self) -> int:
        """The port the first answering sentinel names as the primary."""
        for port in self.sentinel_ports:
            try:
                with self.sentinel_client(port) as client:
                    _host, primary = client.sentinel_get_master_addr_by_name(SERVICE)
                    return int(primary)
            except (redis.exceptions.RedisError, OSError):
                continue
        raise AssertionError("no sentinel answered")

    def kill_primary(self) -> int:
        """SIGKILL the current primary; its port."""
        port = self.primary()
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)
        return port

    def switchover(self) -> int:
        """Ask a sentinel for a planned failover (``SENTINEL FAILOVER``): the primary, still running, is
        demoted to a replica while clients are connected to it. The old primary's port."""
        old = self.primary()
        with self.sentinel_client(self.sentinel_ports[0]) as client:
            client.execute_command("SENTINEL", "FAILOVER", SERVICE)
        return old

    def wait_for_failover(self, old: int, timeout: float = FAILOVER) -> int:
        """Wait until every sentinel names a primary other than ``old`` that answers as a master; its port."""

        def promoted() -> bool:
            ports = set()
            for port in self.sentinel_ports:
                with self.sentinel_client(port) as client:
                    ports.add(int(client.sentinel_get_master_addr_by_name(SERVICE)[1]))
            if len(ports) != 1 or old in ports:
                return False
            with self.data_client(ports.pop()) as client:
                return bool(client.info("replication")["role"] == "master")

        _until(promoted, timeout, "the sentinels to promote the replica")
        self.primary_port = self.primary()
        return self.primary_port

    def wait_for_demotion(self, old: int, timeout: float = FAILOVER) -> None:
        """After a switchover: wait until the old primary (still running) answers as a replica."""
        with self.data_client(old) as client:
            _until(lambda: client.info("replication")["role"] == "slave", timeout, f"{old} to be demoted")

    def stop(self) -> None:
        kill_all(self.processes)
