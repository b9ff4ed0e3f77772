"""Durable jobs: buttress.jobs against pgqueuer and saq on PostgreSQL, on the shared job-queue harness.

The workload is the shared harness's (``common.py`` of the job-queue anchors, outside this repository:
``BENCH_JOBS_HARNESS``, default ``../shared/bench/jobs`` beside the repository root): 1,000 jobs enqueued
one by one, 5,000 no-op jobs (a Redis INCR) enqueued in bulk, ONE worker process with 10 slots timed until
the 5,000th ran, then 20 single jobs after random 0.2-0.7 s idle gaps (enqueue to the job's first line).
The anchors are the harness's own scripts (``bench_pgqueuer.py``, ``bench_saq.py`` with saq's PostgreSQL
queue), run unchanged as child processes against ``BUTTRESS_TEST_DATABASE_URL`` (default: the local
``test`` database) in their own schemas; their results go to a temporary folder, not the harness's.
buttress runs the same steps through its public API (``task.defer``, ``task.defer_many``) in a child
process (``python -m benchmarks.bench_jobs buttress postgresql|sqlite``), on a database of its own on the
same server (made afresh per run) and on a SQLite file; its worker is ``buttress worker`` when the CLI has
the command, else :mod:`benchmarks._jobs_worker` (the same ``Jobs.worker(...).run_sync()``). Without the
harness nothing runs and the table says so. ``BENCH_JOBS_ROUNDS`` (default 1) repeats every configuration
round-robin; the job bodies use the harness's ``BENCH_REDIS_URL`` (its default: Redis db 14).
``BENCH_JOBS_PROFILE`` / ``BENCH_JOBS_COUNTERS`` (see :mod:`benchmarks._jobs_worker`) say where buttress's
worker spends its time; the latency probes are skipped under the profiler.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from benchmarks._harness import Table, rotations

__all__ = ["run"]

ROOT: Final = Path(__file__).resolve().parent.parent
HARNESS: Final = Path(os.environ.get("BENCH_JOBS_HARNESS", str(ROOT.parent / "shared" / "bench" / "jobs")))
PG_URL: Final = os.environ.get("BUTTRESS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROUNDS: Final = int(os.environ.get("BENCH_JOBS_ROUNDS", "1"))
RUN_TIMEOUT_S: Final = 600.0
PG_DATABASE: Final = "bench_buttress_jobs"  # buttress's tables in a database of their own, made per run

BUDGET_PG_RATIO: Final = 1.5  # buttress on PostgreSQL >= 1.5x pgqueuer's jobs/s
BUDGET_SQLITE_RATE: Final = 1_000.0  # jobs/s
BUDGET_PG_P50_MS: Final = 5.0
BUDGET_SQLITE_P50_MS: Final = 20.0


@dataclass(frozen=True)
class Config:
    """One column of the comparison: how to start one run and the name its result is filed under."""

    label: str
    backend: str
    name: str  # the harness's result name (results/<name>.jsonl)
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


def _pg_env() -> dict[str, str]:
    """The harness reads BENCH_PG_HOST / BENCH_PG_DB; user, port and password reach libpq/asyncpg as PG*."""
    url = urlsplit(PG_URL.replace("postgresql+psycopg://", "postgresql://"))
    env = {"BENCH_PG_HOST": url.hostname or "127.0.0.1", "BENCH_PG_DB": url.path.lstrip("/") or "test"}
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.username:
        env["PGUSER"] = unquote(url.username)
    if url.password:
        env["PGPASSWORD"] = unquote(url.password)
    return env


def _anchors() -> list[Config]:
    python = sys.executable
    return [
        Config("pgqueuer", "PostgreSQL", "pgqueuer", (python, str(HARNESS / "bench_pgqueuer.py"))),
        Config(
            "saq",
            "PostgreSQL",
            "saq-postgres",
            (python, str(HARNESS / "bench_saq.py")),
            (("BENCH_SAQ_BACKEND", "postgres"),),
        ),
    ]


def _buttress() -> list[Config]:
    python = sys.executable
    return [
        Config(
            "buttress",
            "PostgreSQL",
            "buttress-postgresql",
            (python, "-m", "benchmarks.bench_jobs", "buttress", "postgresql"),
        ),
        Config(
            "buttress",
            "SQLite",
            "buttress-sqlite",
            (python, "-m", "benchmarks.bench_jobs", "buttress", "sqlite"),
        ),
    ]


def _run_one(config: Config, results: Path) -> dict[str, Any] | None:
    """One run of ``config`` in a child process; the result line the harness filed, or None if it failed."""
    env = dict(os.environ)
    env.update(_pg_env())
    env.update(config.env)
    env["BENCH_RESULTS"] = str(results)
    env["BENCH_JOBS_HARNESS"] = str(HARNESS)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cwd = HARNESS if config.argv[1:2] != ("-m",) else ROOT
    print(f"  {config.label} on {config.backend} ...", file=sys.stderr, flush=True)
    done = subprocess.run(  # noqa: S603 - our own interpreter on the harness's scripts
        config.argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    for line in (done.stdout + done.stderr).splitlines():
        print(f"    {line}", file=sys.stderr, flush=True)
    path = results / f"{config.name}.jsonl"
    if done.returncode != 0 or not path.exists():
        return None
    result: dict[str, Any] = json.loads(path.read_text().splitlines()[-1])
    path.unlink()
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if isinstance(run.get(key), int | float)]
    return statistics.median(values) if values else None


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _per_job_ms(runs: list[dict[str, Any]], key: str) -> str:
    value = _median(runs, key)
    n = _median(runs, "N")
    return "n/a" if value is None or not n else f"{value * 1e3 / n:.2f}"


def _latency(runs: list[dict[str, Any]]) -> str:
    lats = [x for run in runs for x in run.get("latencies_ms", []) if x is not None]
    if not lats:
        return "n/a"
    lost = sum(run.get("latency_lost", 0) for run in runs)
    text = f"{statistics.median(lats):.1f} ({min(lats):.1f}-{max(lats):.1f})"
    return text + (f", {lost} lost" if lost else "")


def _enqueue(runs: list[dict[str, Any]]) -> str:
    bulk = _median(runs, "enqueue_per_s")
    conc = _median(runs, "enqueue_conc_per_s")
    single = _median(runs, "enqueue_single_per_s")
    main = f"{_rate(bulk)} bulk" if bulk is not None else f"{_rate(conc)} (50 in flight, no bulk API)"
    return f"{main}; {_rate(single)} one by one"


COLUMNS: Final = (
    "library",
    "backend",
    "enqueue/s",
    "process/s from worker spawn",
    "process/s first→last job",
    "spawn→first job s",
    "pickup latency ms, median (min-max)",
    "worker CPU ms/job",
    "PostgreSQL CPU ms/job",
)


@dataclass
class JobsTable(Table):
    """Rates (jobs per second, higher is better) and latencies, one line per library and backend."""

    lines: list[tuple[str, ...]] = field(default_factory=list)

    def to_markdown(self) -> str:
        out = [
            f"### {self.title}",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
        ]
        out += ["| " + " | ".join(line) + " |" for line in self.lines]
        out += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(out) + "\n"


def _line(config: Config, version: str, runs: list[dict[str, Any]]) -> tuple[str, ...]:
    if not runs:
        return (f"{config.label} {version}".strip(), config.backend, *(["did not run"] + ["n/a"] * 6))
    startup = _median(runs, "worker_startup_s")
    return (
        f"{config.label} {runs[0].get('version', version)}",
        config.backend,
        _enqueue(runs),
        _rate(_median(runs, "process_per_s")),
        _rate(_median(runs, "process_steady_per_s")),
        "n/a" if startup is None else f"{startup:.2f}",
        _latency(runs),
        _per_job_ms(runs, "cpu_worker_s"),
        _per_job_ms(runs, "cpu_postgres_s") if config.backend == "PostgreSQL" else "n/a",
    )


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "n/a" if ours is None or not theirs else f"{ours / theirs:.2f}x"


def _budget_notes(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    pg, lite = results.get("buttress-postgresql", []), results.get("buttress-sqlite", [])
    pgq, saq = results.get("pgqueuer", []), results.get("saq-postgres", [])
    notes: list[str] = []
    for key, what in (("process_steady_per_s", "first→last job"), ("process_per_s", "from worker spawn")):
        if not pg:
            break
        ours = _median(pg, key)
        notes.append(
            f"buttress on PostgreSQL, jobs/s {what}: {_ratio(ours, _median(pgq, key))} pgqueuer's, "
            f"{_ratio(ours, _median(saq, key))} saq's (higher is better)"
        )
    if ROUNDS > 1:
        for name, runs in results.items():
            rates = ", ".join(_rate(run.get("process_steady_per_s")) for run in runs)
            notes.append(f"{name}, jobs/s first→last job per round: {rates}")
        pairs = list(zip(pg, pgq, strict=False))
        if pairs:
            ratios = ", ".join(
                _ratio(ours.get("process_steady_per_s"), theirs.get("process_steady_per_s"))
                for ours, theirs in pairs
            )
            notes.append(
                f"buttress on PostgreSQL / pgqueuer, jobs/s first→last job, round by round: {ratios}"
            )
    budgets: list[str] = []
    ours, theirs = _median(pg, "process_steady_per_s"), _median(pgq, "process_steady_per_s")
    if ours is not None and theirs:
        budgets.append(
            f"PostgreSQL throughput >= {BUDGET_PG_RATIO:.1f}x pgqueuer (first→last job): "
            f"{ours / theirs:.2f}x, {_verdict(ours / theirs >= BUDGET_PG_RATIO)}"
        )
    lite_rate = _median(lite, "process_steady_per_s")
    if lite_rate is not None:
        budgets.append(
            f"SQLite >= {BUDGET_SQLITE_RATE:,.0f} jobs/s (first→last job): {lite_rate:,.0f}, "
            f"{_verdict(lite_rate >= BUDGET_SQLITE_RATE)}"
        )
    for runs, backend, limit in (
        (pg, "PostgreSQL", BUDGET_PG_P50_MS),
        (lite, "SQLite", BUDGET_SQLITE_P50_MS),
    ):
        lats = [x for run in runs for x in run.get("latencies_ms", []) if x is not None]
        if lats:
            p50 = statistics.median(lats)
            budgets.append(
                f"pickup p50 on {backend} <= {limit:.0f} ms: {p50:.1f} ms, {_verdict(p50 <= limit)}"
            )
    if budgets:
        notes.append("Budgets: " + "; ".join(budgets) + ".")
    return notes


def _buttress_available() -> bool:
    return importlib.util.find_spec("buttress.jobs") is not None


def run() -> Table:
    configs: list[Config] = []
    notes: list[str] = []
    if (HARNESS / "common.py").exists():
        configs += _anchors()
    else:
        notes.append(
            f"The shared job-queue harness was not found at {HARNESS} (set BENCH_JOBS_HARNESS): "
            "pgqueuer and saq were skipped, and buttress too (the workload and its job bodies are the "
            "harness's)."
        )
    if _buttress_available() and (HARNESS / "common.py").exists():
        configs += _buttress()
    elif not _buttress_available():
        notes.append("buttress.jobs is not importable here: the buttress rows were skipped.")
    results: dict[str, list[dict[str, Any]]] = {config.name: [] for config in configs}
    by_name = {config.name: config for config in configs}
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as folder:
        for name in rotations(list(by_name), ROUNDS if by_name else 0):
            result = _run_one(by_name[name], Path(folder))
            if result is not None:
                results[name].append(result)
    lines = [_line(config, "", results[config.name]) for config in configs]
    notes = _budget_notes(results) + notes
    notes += [
        (
            "Workload (the shared harness's, the same for every library): 1,000 jobs enqueued one by one "
            "(timed, then cleared), 5,000 no-op jobs enqueued with the bulk API (saq has none: 5,000 "
            "calls with 50 in flight), then ONE worker process with 10 slots started; the job body is a "
            "sync redis-py INCR (the jobs seeing count 1 and 5,000 store the time). Process/s from worker "
            "spawn includes interpreter start, imports and connecting; first→last job excludes them. "
            "Then, with the worker idle, 20 single jobs after random 0.2-0.7 s gaps: pickup latency is "
            "the job's first line minus the moment just before the enqueue call (it includes the "
            "enqueue round trip)."
        ),
        (
            "Anchors: the harness's bench_pgqueuer.py (one asyncpg connection, entrypoint "
            "concurrency_limit=10, batch 10, LISTEN/NOTIFY) and bench_saq.py with saq's PostgreSQL queue "
            "(Worker(concurrency=10), LISTEN/NOTIFY), unchanged, each in its own schema of the same "
            "database; pgqueuer deletes finished jobs into a log table, saq keeps the rows. CPU per job: "
            "the worker's process group and all postgres processes, worker spawn to last job."
        ),
        (
            f"Rounds: {ROUNDS}, every configuration once per round in rotating order; a cell is the median "
            "of the rounds (latency: of all probes)."
        ),
    ]
    return JobsTable(
        title="Jobs: durable queue throughput and pickup latency (buttress.jobs vs pgqueuer and saq)",
        anchors=["pgqueuer", "saq"],
        rows=[],
        notes=notes,
        lines=lines,
    )


# -- the buttress run (a child process: ``python -m benchmarks.bench_jobs buttress BACKEND``) -----------


def _clear(db: Any) -> None:
    """Empty buttress's job and worker tables (the schema stays)."""
    from sqlalchemy import text

    with db.session() as session:
        session.execute(text("DELETE FROM buttress_jobs"))
        session.execute(text("DELETE FROM buttress_job_workers"))


def _pg_database() -> str:
    """A fresh database of its own on the anchors' server (buttress's engine sets the connection's
    ``options``, so a schema on the search path is not possible); the URL's own database, its job
    tables emptied, when the role may not create one."""
    import psycopg
    from psycopg import sql

    url = urlsplit(PG_URL.replace("postgresql+psycopg://", "postgresql://"))
    try:
        with psycopg.connect(url.geturl(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(PG_DATABASE)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PG_DATABASE)))
    except psycopg.Error as exc:
        print(f"# buttress: cannot create database {PG_DATABASE} ({exc}); using {url.path}", file=sys.stderr)
        return url._replace(scheme="postgresql+psycopg").geturl()
    return url._replace(scheme="postgresql+psycopg", path=f"/{PG_DATABASE}").geturl()


def _buttress_env(backend: str, folder: str) -> str:
    """Point this process (and the worker it starts) at ``backend``; the run's name."""
    if backend == "postgresql":
        os.environ["BUTTRESS_DATABASE_URL"] = _pg_database()
    else:
        os.environ["BUTTRESS_DATABASE_URL"] = f"sqlite:///{folder}/jobs.db"
    lib = f"buttress-{backend}"
    os.environ["BENCH_JOBS_LIB"] = lib
    os.environ["BENCH_JOBS_HARNESS"] = str(HARNESS)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if str(HARNESS) not in sys.path:
        sys.path.insert(0, str(HARNESS))
    return lib


def _buttress_enqueue(res: dict[str, Any], common: Any, jobs: Any) -> None:
    """One by one with ``task.defer`` (timed, then cleared), then the N jobs with ``task.defer_many``."""
    from benchmarks import _jobs_tasks

    start = time.perf_counter()
    for i in range(common.N_SINGLE):
        _jobs_tasks.noop.defer(i)
    res["enqueue_single_per_s"] = common.rate(common.N_SINGLE, time.perf_counter() - start)
    _clear(jobs.db)
    start = time.perf_counter()
    _jobs_tasks.noop.defer_many([(i,) for i in range(common.N)])
    res["enqueue_per_s"] = common.rate(common.N, time.perf_counter() - start)
    res["enqueue_mode"] = "Task.defer_many"
    queued = jobs.stats().queues[_jobs_tasks.QUEUE].counts.get("queued", 0)
    assert queued == common.N, queued


def _worker_argv(concurrency: int) -> list[str]:
    """``buttress worker`` when the CLI has it and no probe is asked for; else this benchmark's own entry
    (the same ``Jobs.worker(...).run_sync()``, with the profile and counter knobs)."""
    probes = os.environ.get("BENCH_JOBS_PROFILE") or os.environ.get("BENCH_JOBS_COUNTERS")
    cli = [sys.executable, "-m", "buttress", "worker"]
    if not probes:
        has_cli = subprocess.run(  # noqa: S603 - our own interpreter
            [*cli, "--help"], capture_output=True, check=False, timeout=60
        )
        if has_cli.returncode == 0:
            return [
                *cli,
                "--import",
                "benchmarks._jobs_tasks",
                "--queues",
                "bench",
                "--concurrency",
                str(concurrency),
            ]
    return [sys.executable, "-m", "benchmarks._jobs_worker", str(concurrency)]


def _buttress_process(lib: str, res: dict[str, Any], common: Any, jobs: Any) -> None:
    """Start the worker, time the N jobs, wait until their rows say succeeded, then the latency probes."""
    from benchmarks import _jobs_tasks

    def counts() -> dict[str, int]:
        return dict(jobs.stats().queues[_jobs_tasks.QUEUE].counts)

    common.reset_counters(lib)
    cpu0 = common.cpu_snapshot()
    t_spawn = time.time()
    argv = _worker_argv(common.CONCURRENCY)
    res["worker_command"] = " ".join(argv[1:])
    worker = common.spawn_worker(lib, argv)
    try:
        done = common.wait_done(lib, worker)
        common.record_cpu(res, cpu0, common.cpu_snapshot(worker.pid))
        if done is None:
            res["notes"] = "processing did not finish"
            return
        common.finish_processing(lib, res, t_spawn, done)
        acked = common.wait_until(lambda: counts().get("succeeded", 0) == common.N, timeout=30.0)
        res["acked_after_last_ms"] = (acked - done[1]) * 1000 if acked else None
        if not os.environ.get("BENCH_JOBS_PROFILE"):  # a profile covers the throughput run only
            time.sleep(1.0)
            res["latencies_ms"] = common.latency_sync(lib, _jobs_tasks.lat.defer)
    finally:
        common.stop_worker(worker)
        res["status_counts"] = counts()


def _buttress_run(backend: str) -> None:
    """The harness's steps through buttress's public API; the result is filed as the harness files its own."""
    with tempfile.TemporaryDirectory(prefix="bench-jobs-sqlite-") as folder:
        lib = _buttress_env(backend, folder)
        common = importlib.import_module("common")

        from buttress.jobs import get_jobs

        jobs = get_jobs()
        jobs.ensure_schema()
        _clear(jobs.db)
        res: dict[str, Any] = {"backend": backend, "version": version("buttress")}
        _buttress_enqueue(res, common, jobs)
        _buttress_process(lib, res, common, jobs)
        common.report(lib, res)


if __name__ == "__main__":
    if sys.argv[1:2] == ["buttress"]:
        _buttress_run(sys.argv[2])
    else:
        print(run().to_markdown())
