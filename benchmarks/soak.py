"""The multi-node soak (``make soak``): N nodes share one Redis and one PostgreSQL while a chaos loop
kills workers, trips a breaker, restarts Redis and pauses the database; then the checks, in RELIABILITY.md.

``python -m benchmarks.soak [--nodes 3] [--seconds 120] [--redis-cluster | --redis-url URL]
[--database-url URL] [--out PATH]``

Each node is two processes: :mod:`benchmarks.soak_node` (the ops server on its own port and the load) and
``buttress worker`` (jobs and schedules), which the chaos loop SIGKILLs and starts again. Without
``--redis-url`` the soak starts its own redis-server and its Redis drill kills and restarts it; with
``--redis-cluster`` it starts its own 3-primary/3-replica cluster and the drill SIGKILLs the primary holding
the shared breaker (its replica is promoted; the killed node rejoins as a replica); with a URL of yours the
Redis drill is skipped. The database is a fresh one on ``--database-url``'s server,
reached through a pausable proxy (:mod:`benchmarks.soak_services`). See docs/soak.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, TextClause, create_engine, make_url, text
from tests._fresh_db import fresh_postgres
from tests._ports import free_port
from tests._redis_cluster import RedisCluster
from tests._redis_server import RedisServer

from benchmarks.soak_checks import Drill, Outcome, evaluate
from benchmarks.soak_plan import BREAKER_NAME, TICK_EVERY, TICK_SCHEDULE
from benchmarks.soak_report import write_report
from benchmarks.soak_services import PausableProxy
from buttress._redis import mask_url

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_DB: Final = os.environ.get("BUTTRESS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_DOWN_S: Final = 2.0
DB_PAUSE_S: Final = 4.0
WORKER_DOWN_S: Final = 1.0
BREAKER_FAIL_S: Final = 1.0
DRAIN_S: Final = 90.0
_UNFINISHED: Final = text(
    "SELECT count(*) FROM buttress_jobs WHERE status IN ('queued', 'scheduled', 'retrying', 'running')"
)
_WORKERS: Final = text("SELECT count(*) FROM buttress_job_workers")
_TICKS_SINCE: Final = text(
    "SELECT count(*) FROM buttress_job_ticks WHERE schedule = :schedule AND fire_at >= :since"
)

# A trigger counts every move of a job into 'succeeded': a job completed twice would show two rows.
_COMPLETIONS_SQL: Final = """
CREATE TABLE soak_completions (job_id bigint NOT NULL, at double precision NOT NULL);
CREATE FUNCTION soak_completed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'succeeded' AND OLD.status IS DISTINCT FROM 'succeeded' THEN
    INSERT INTO soak_completions VALUES (NEW.id, extract(epoch FROM clock_timestamp()));
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER soak_completed AFTER UPDATE OF status ON buttress_jobs
  FOR EACH ROW EXECUTE FUNCTION soak_completed();
"""


@dataclass
class Cluster:
    """The processes of one soak run and the services its chaos loop breaks."""

    directory: Path
    env: dict[str, str]
    proxy: PausableProxy
    redis: RedisServer | None
    ports: list[int]
    redis_cluster: RedisCluster | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.directory / f"{name}.out").open("ab") as log:  # the child keeps its own copy
            return subprocess.Popen(  # noqa: S603 - our own interpreter on our own modules
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def start_worker(self, index: int) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "buttress", "worker", "--import", "benchmarks.soak_jobs", "-c", "4"]
        return self.spawn(argv, f"worker-{index}")

    def start(self, nodes: int, engine: Engine) -> None:
        """Start every worker and node; return once every ops server answers and every worker is polling."""
        self.workers = [self.start_worker(i) for i in range(nodes)]
        self.nodes = [
            self.spawn([sys.executable, "-m", "benchmarks.soak_node", str(i), str(port)], f"node-{i}")
            for i, port in enumerate(self.ports)
        ]
        for port in self.ports:
            _wait_ready(f"http://127.0.0.1:{port}/health/live", 60)
        deadline = time.monotonic() + 60
        while _count(engine, _WORKERS) < nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{nodes} workers did not register within 60 s")
            time.sleep(0.1)  # polling the real workers table

    def stop(self) -> None:
        (self.directory / "stop").touch()
        for process in self.nodes:
            _end(process, 30)

    def stop_workers(self) -> None:
        for process in self.workers:
            process.terminate()
        for process in self.workers:
            _end(process, 30)


def _wait_ready(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our own loopback server
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)  # polling a real server until it answers


def _end(process: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# -- the drills: each breaks one thing, waits, repairs it and says when ------------------------------------


def kill_worker(cluster: Cluster, round_: int) -> Drill:
    """SIGKILL one node's worker mid-run and start it again (its jobs run again after their lease)."""
    index = round_ % len(cluster.workers)
    start = time.time()
    cluster.workers[index].kill()
    cluster.workers[index].wait(10)
    time.sleep(WORKER_DOWN_S)
    cluster.workers[index] = cluster.start_worker(index)
    return Drill(
        "worker SIGKILL", start, time.time(), f"worker of node {index}, restarted after {WORKER_DOWN_S:g} s"
    )


def trip_breaker(cluster: Cluster, round_: int) -> Drill:
    """Make one node's upstream fail until that node trips the shared breaker; every node must see it open."""
    index = round_ % len(cluster.ports)
    flag = cluster.directory / f"fail-{index}"
    start = time.time()
    flag.touch()
    time.sleep(BREAKER_FAIL_S)
    flag.unlink()
    return Drill(
        "breaker trip",
        start,
        time.time(),
        f"upstream of node {index} failing for {BREAKER_FAIL_S:g} s",
        index,
    )


def restart_redis(cluster: Cluster, round_: int) -> Drill | None:
    """SIGKILL Redis (every key is lost) and start it again on the same port; on a cluster, its primary."""
    if cluster.redis_cluster is not None:
        return _fail_over(cluster.redis_cluster, cluster.env["BUTTRESS_RESILIENCE__PREFIX"])
    if cluster.redis is None:
        return None
    start = time.time()
    cluster.redis.stop()
    time.sleep(REDIS_DOWN_S)
    cluster.redis.start()
    return Drill("Redis restart", start, time.time(), f"SIGKILL, down {REDIS_DOWN_S:g} s, no persistence")


def _fail_over(redis_cluster: RedisCluster, prefix: str) -> Drill:
    """SIGKILL the primary that holds the shared breaker; once its replica serves the slot, the killed node
    comes back (as a replica), so the next round has a replica to promote again."""
    key = f"{prefix}:{{breaker:{BREAKER_NAME}}}"
    start = time.time()
    port = redis_cluster.kill_primary_of(key)
    redis_cluster.wait_until_promoted(key)
    promoted = time.time() - start
    redis_cluster.restart_node(port)
    return Drill(
        "Redis primary SIGKILL",
        start,
        time.time(),
        f"the breaker's primary (port {port}); replica promoted after {promoted:.1f} s, node rejoined",
    )


def pause_database(cluster: Cluster, round_: int) -> Drill:
    """Stop every byte between the nodes and PostgreSQL, as a frozen server would."""
    start = time.time()
    cluster.proxy.pause()
    time.sleep(DB_PAUSE_S)
    cluster.proxy.resume()
    return Drill("database pause", start, time.time(), f"no byte relayed for {DB_PAUSE_S:g} s")


DRILLS: Final[list[Callable[[Cluster, int], Drill | None]]] = [
    kill_worker,
    trip_breaker,
    restart_redis,
    pause_database,
]


def chaos(cluster: Cluster, seconds: float) -> list[Drill]:
    """Run the drills in turn, evenly spread, leaving the last tenth of the run (at least 5 s) quiet."""
    began = time.time()
    quiet = max(5.0, seconds / 10)
    rounds = max(1, int((seconds - quiet) // 50))
    plan = [(r, drill) for r in range(rounds) for drill in DRILLS]
    spacing = (seconds - quiet) / (len(plan) + 1)
    done: list[Drill] = []
    for slot, (round_, drill) in enumerate(plan, start=1):
        time.sleep(max(0.0, began + slot * spacing - time.time()))
        print(f"soak: {drill.__name__} (round {round_ + 1})", file=sys.stderr, flush=True)
        result = drill(cluster, round_)
        if result is not None:
            done.append(result)
    time.sleep(max(0.0, began + seconds - time.time()))
    return done


def _environment(directory: Path, redis_url: str, database_url: str, run_id: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTRESS_")}
    env |= {
        "SOAK_DIR": str(directory),
        "PYTHONPATH": str(ROOT),
        "BUTTRESS_REDIS_URL": redis_url,
        "BUTTRESS_DATABASE_URL": database_url,
        "BUTTRESS_RESILIENCE__STORE": "redis",
        "BUTTRESS_RESILIENCE__REDIS_POLICY": "closed",  # a global limit that must hold, even without Redis
        "BUTTRESS_RESILIENCE__PREFIX": f"soak{run_id}",
        "BUTTRESS_CACHE__BACKEND": "tiered",
        "BUTTRESS_CACHE__PREFIX": f"soak{run_id}:cache",
        "BUTTRESS_CACHE__L1_TTL": "2",
        "BUTTRESS_EVENTS__PREFIX": f"soak{run_id}:events",
        "BUTTRESS_JOBS__LEASE": "5",
        "BUTTRESS_LOGGING__LEVEL": "WARNING",
    }
    return env


def run(
    *,
    nodes: int = 3,
    seconds: float = 120.0,
    redis_url: str | None = None,
    redis_cluster: bool = False,
    database_url: str = DEFAULT_DB,
    keep: Path | None = None,
) -> Outcome:
    """One soak run; its checks and figures. ``keep``: a folder to copy the nodes' logs to."""
    if redis_cluster and redis_url is not None:
        raise ValueError("give --redis-cluster or --redis-url, not both")
    run_id = os.urandom(3).hex()
    with (
        tempfile.TemporaryDirectory(prefix="buttress-soak-") as tmp,
        fresh_postgres(database_url, "soak") as db,
    ):
        directory = Path(tmp)
        redis = None
        own_cluster = None
        if redis_cluster:
            own_cluster = RedisCluster(directory / "redis-cluster")
            own_cluster.start()
            redis_url = own_cluster.url
        elif redis_url is None:
            if shutil.which("redis-server") is None:
                raise RuntimeError("the soak's Redis drill needs redis-server (or pass --redis-url)")
            redis = RedisServer(directory)
            redis.start()
            redis_url = redis.url
        direct = make_url(db)
        proxy = PausableProxy(direct.host or "127.0.0.1", direct.port or 5432)
        proxy.start()
        proxied = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = _environment(directory, redis_url, proxied, run_id)
        subprocess.run([sys.executable, "-m", "buttress", "db", "upgrade"], cwd=ROOT, env=env, check=True)
        engine = create_engine(direct.set(drivername="postgresql+psycopg"))
        with engine.begin() as connection:
            connection.exec_driver_sql(_COMPLETIONS_SQL)
        cluster = Cluster(directory, env, proxy, redis, [free_port() for _ in range(nodes)], own_cluster)
        try:
            cluster.start(nodes, engine)
            began = time.time()
            drills = chaos(cluster, seconds)
            ended = time.time()
            cluster.stop()
            drained = _drain(engine, DRAIN_S, ended)
            cluster.stop_workers()
            return evaluate(directory, engine, drills, began, ended, nodes=nodes, drained=drained)
        finally:
            (directory / "stop").touch()
            for process in cluster.nodes + cluster.workers:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
            engine.dispose()
            proxy.stop()
            if redis is not None:
                redis.stop()
            if own_cluster is not None:
                own_cluster.stop()
            if keep is not None:
                shutil.copytree(directory, keep, dirs_exist_ok=True)


def _count(engine: Engine, query: TextClause, **params: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(query, params).scalar_one())


def _drain(engine: Engine, seconds: float, ended: float) -> bool:
    """Wait until the schedule fired past the end of the load and no job is waiting or running (the
    workers finish what the load left); False on timeout."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fired = _count(engine, _TICKS_SINCE, schedule=TICK_SCHEDULE, since=ended - TICK_EVERY)
        if fired and _count(engine, _UNFINISHED) == 0:
            return True
        time.sleep(0.5)  # polling the real queue until the workers empty it
    return False


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument(
        "--redis-url", default=None, help="use this Redis (no Redis drill) instead of starting one"
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="start a 3-primary/3-replica Redis Cluster; the Redis drill kills a primary",
    )
    parser.add_argument(
        "--database-url", default=DEFAULT_DB, help="the PostgreSQL server to make a fresh database on"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "RELIABILITY.md")
    parser.add_argument("--keep", type=Path, default=None, help="copy the nodes' and workers' logs here")
    args = parser.parse_args(argv)
    outcome = run(
        nodes=args.nodes,
        seconds=args.seconds,
        redis_url=args.redis_url,
        redis_cluster=args.redis_cluster,
        database_url=args.database_url,
        keep=args.keep,
    )
    shown = [mask_url(arg) if "://" in arg else arg for arg in argv]  # no password reaches the report
    command = "make soak" if not argv else "python -m benchmarks.soak " + shlex.join(shown)
    write_report(args.out, outcome, command)
    print(json.dumps(outcome.summary(), indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
