"""A throwaway Redis Cluster (3 primaries, 3 replicas) on spare loopback ports, for tests that kill nodes.

The API, for every suite that needs a real cluster (cache, resilience, realtime, soak)::

    with RedisCluster(tmp_dir) as cluster:       # or the session fixture ``redis_cluster``
        cluster.url                               # redis+cluster://127.0.0.1:P1,127.0.0.1:P2
        port = cluster.kill_primary_of("k")       # SIGKILL the primary serving key "k"; its port
        cluster.kill_node(cluster.ports[0])       # or any node (here the URL's first seed)
        cluster.wait_until_promoted("k")          # block until a live primary serves "k" again
        cluster.restart_node(port)                # start the killed node again (it rejoins as a replica)

Each node is ``redis-server --cluster-enabled yes`` in a directory of its own; its cluster bus is its
port + 10000, so ports are picked below 55536. Waits poll a real condition with a deadline.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.crc import key_slot

from tests._harness import Harness, kill_all
from tests._ports import free_port

NODES = 6
NODE_TIMEOUT_MS = 1000
READY = 30.0  # seconds a fresh cluster may take to agree on its slots
PROMOTION = 20.0  # seconds a replica may take to replace a killed primary


def _spare_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port in taken or port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_connect_timeout=0.3, socket_timeout=1.0)


def _until(what: str, deadline: float, check: object) -> None:
    """Poll ``check()`` (a callable) until it is true; AssertionError naming ``what`` at ``deadline``."""
    assert callable(check)
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"Redis Cluster: {what} did not happen in time")
        time.sleep(0.05)  # polling a real server for a real condition, bounded by the deadline


class RedisCluster(Harness):
    """Six ``redis-server`` nodes made into a cluster with ``redis-cli --cluster create``."""

    def __init__(self, directory: Path) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise FileNotFoundError("redis-server and redis-cli are needed for a Redis Cluster")
        self.server, self.cli = server, cli
        self.directory = directory
        taken: set[int] = set()
        for _ in range(NODES):
            taken.add(_spare_port(taken))
        self.ports = sorted(taken)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """Two seed nodes: a client finds the rest (and survives one seed being down)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]},127.0.0.1:{self.ports[1]}"

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        for port in self.ports:
            self._start_node(port)
        for port in self.ports:
            _until(f"node {port} listening", time.monotonic() + 10, lambda p=port: _client(p).ping())
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ready()

    def _start_node(self, port: int) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                self.server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=node_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """SIGKILL every node (teardown)."""
        kill_all(self.processes)

    # -- state --------------------------------------------------------------------------------------

    def alive(self) -> list[int]:
        """Ports of the nodes whose process runs."""
        return [port for port, process in self.processes.items() if process.poll() is None]

    def _ok_everywhere(self) -> bool:
        for port in self.alive():
            client = _client(port)
            try:
                info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
                replication = client.info("replication")
            finally:
                client.close()
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                return False
            if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                return False  # a replica that never synced cannot be promoted
        return True

    def wait_ready(self, timeout: float = READY) -> None:
        """Block until every live node says cluster_state:ok with all 16384 slots served, and every
        replica is in sync with its primary (one that never synced cannot be promoted)."""
        _until("cluster_state:ok on every node", time.monotonic() + timeout, self._ok_everywhere)

    def primary_of(self, key: str) -> int:
        """The port of the primary serving ``key``'s slot, as a live node sees it."""
        slot = key_slot(key.encode())
        for port in self.alive():
            client = _client(port)
            try:
                slots = client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
                for start, end, primary, *_ in slots:
                    if start <= slot <= end:
                        return int(primary[1])
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
        raise AssertionError(f"no live node answers CLUSTER SLOTS for {key!r}")

    # -- failures -----------------------------------------------------------------------------------

    def kill_primary_of(self, key: str) -> int:
        """SIGKILL the primary serving ``key``; its port (for :meth:`restart_node`)."""
        return self.kill_node(self.primary_of(key))

    def kill_node(self, port: int) -> int:
        """SIGKILL the node on ``port`` (a primary or a replica); ``port``."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        return port

    def wait_until_promoted(self, key: str, timeout: float = PROMOTION) -> int:
        """Block until a live primary serves ``key`` and the cluster is ok again; that primary's port."""
        deadline = time.monotonic() + timeout
        _until(f"a live primary for {key!r}", deadline, lambda: self.primary_of(key) in self.alive())
        _until("cluster_state:ok after the failover", deadline, self._ok_everywhere)
        return self.primary_of(key)

    def restart_node(self, port: int, timeout: float = READY) -> None:
        """Start the node on ``port`` again (same config file: it rejoins, as a replica of its successor)."""
        self._start_node(port)
        _until(f"node {port} back", time.monotonic() + timeout, lambda: _client(port).ping())
        self.wait_ready(timeout)
