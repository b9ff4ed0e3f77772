"""A run of the demo once the settings and services are in place: app, workers, uploads, watch, tally."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.live import Live
from sqlalchemy import select

from buttress.container import get_container
from buttress.db import Database
from buttress.files import get_files
from buttress.jobs import JobInfo, JobStatus, get_jobs
from buttress.testing import Upstream
from examples.podpromo.app import MAX_EPISODE_SIZE, create_app
from examples.podpromo.demo.batch import SHOWS, make_batch, upload_all
from examples.podpromo.demo.chaos import RedisChaos
from examples.podpromo.demo.live import view
from examples.podpromo.demo.processes import AppServer, WorkerProcess, spawn_worker
from examples.podpromo.demo.tally import (
    TERMINAL,
    Kill,
    failure_reasons,
    job_outcomes,
    kill_cost,
    read_runs,
    result_checks,
    sum_host_stats,
)
from examples.podpromo.pipeline import QUEUE
from examples.podpromo.tables import cache_stats, create_tables

if TYPE_CHECKING:
    from examples.podpromo.demo.run import Options

__all__ = ["SLOW_MS", "Session"]

SLOW_MS = 20
"""A statement slower than this (ms) goes to the slow log, with its plan (``BUTTRESS_DB__SLOW_QUERY_MS``)."""


class Session:
    """The app in a thread, the worker processes, and what the demo saw while they worked."""

    def __init__(
        self,
        options: Options,
        folder: Path,
        *,
        upstream: Upstream,
        chaos: RedisChaos,
        workers: list[WorkerProcess],
        started: float,
    ) -> None:
        self.options, self.folder, self.started = options, folder, started
        self.upstream, self.chaos = upstream, chaos
        self.db = get_container().resolve(Database)
        self.embedded_db = str(folder) in str(self.db.info().get("url", ""))
        self.events: list[str] = []
        self.workers = workers
        self.uploaded: list[str] = []
        self.reported_exits: set[int] = set()
        for worker in workers:
            self.note(f"worker started, pid {worker.pid}", at=worker.started)

    def note(self, line: str, at: float | None = None) -> None:
        """Add a line to the event log, stamped with the seconds since the demo started."""
        self.events.append(f"{(at or time.monotonic()) - self.started:5.1f} s  {line}")

    def spawn(self) -> WorkerProcess:
        worker = spawn_worker(self.folder, len(self.workers), self.options.concurrency)
        self.workers.append(worker)
        self.note(f"worker started, pid {worker.pid}")
        return worker

    def run(self, console: Console | None) -> dict[str, Any]:
        create_tables(self.db)
        try:
            with AppServer(create_app()) as app, httpx.Client(base_url=app.url, timeout=30) as client:
                report = self.drive(app, client, console)
                if not self.embedded_db:  # your database: take back the demo's files and their quota
                    for file_id in self.uploaded:
                        get_files().delete(file_id)
                return report
        finally:
            for worker in self.workers:
                worker.stop()

    def drive(self, app: AppServer, client: httpx.Client, console: Console | None) -> dict[str, Any]:
        dashboard = f"{app.url}/ops/dashboard"
        if console is not None:
            console.print(
                f"[bold]podpromo demo[/]: the app at {app.url}, live dashboard at [link]{dashboard}[/]"
            )
        self.note(f"app up at {app.url}")
        batch = make_batch(self.options.episodes, self.options.seed, max_size=MAX_EPISODE_SIZE)
        accepted, refused = upload_all(client, batch)
        self.uploaded = list(accepted)
        self.note(f"uploaded {len(batch)} files: {len(accepted)} accepted, {sum(refused.values())} refused")
        jobs_of = {info["job"]: file_id for file_id, info in accepted.items()}
        self.cancel_lowest(client, accepted)
        names = {info["job"]: info["name"] for info in accepted.values()}
        kill = self.watch(names, dashboard, console)
        for worker in self.workers:  # SIGTERM: each writes its last HTTP stats on the way out
            worker.stop()
        self.note("workers stopped (SIGTERM)")
        for show in (*SHOWS, "guest-spot"):  # a show page a few times: the statements the advice reads
            for _ in range(3):
                client.get(f"/shows/{show}/results").raise_for_status()
        infos = {job_id: get_jobs().get(job_id) for job_id in jobs_of}
        return self.tally(client, accepted, refused=refused, infos=infos, kill=kill, dashboard=dashboard)

    def cancel_lowest(self, client: httpx.Client, accepted: dict[str, dict[str, Any]]) -> None:
        """Cancel the job that would run last (lowest priority, newest) while it still waits."""
        infos = [get_jobs().get(info["job"]) for info in accepted.values()]
        waiting = [info for info in infos if info.status is JobStatus.QUEUED]
        if waiting:
            last = min(waiting, key=lambda info: (info.priority, -info.id))
            status = client.post(f"/jobs/{last.id}/cancel").json()["status"]
            self.note(f"cancel job {last.id} (priority {last.priority}): {status}")

    def watch(self, names: dict[int, str], dashboard: str, console: Console | None) -> Kill | None:
        """Follow the jobs until each has ended (or the time limit); kill a busy worker on the way."""
        kill: Kill | None = None
        deadline = self.started + self.options.time_limit
        with Live(console=console, refresh_per_second=8, transient=False) if console else _Quiet() as live:
            while time.monotonic() < deadline:
                infos = _infos(names)
                bodies = read_runs(self.db, names)
                pids = {run.job_id: run.pid for run in bodies}
                if kill is None:
                    kill = self.maybe_kill(infos, bodies, len(names))
                for line in filter(None, [self.chaos.tend(), *self.exited()]):
                    self.note(line)
                live.update(
                    view(
                        names, infos, pids=pids, events=self.events, started=self.started, dashboard=dashboard
                    )
                )
                if kill is not None and all(info.status in TERMINAL for info in infos.values()):
                    self.note("every job has ended")
                    live.update(
                        view(
                            names,
                            infos,
                            pids=pids,
                            events=self.events,
                            started=self.started,
                            dashboard=dashboard,
                        )
                    )
                    break
                if kill is None and all(info.status in TERMINAL for info in infos.values()):
                    self.note("every job ended before a worker could be killed")
                    break
                time.sleep(0.15)
            else:
                self.note(f"time limit ({self.options.time_limit:.0f} s) reached")
        return kill

    def exited(self) -> list[str]:
        """A line for each worker that died without the demo killing it (its log says why)."""
        lines = []
        for number, worker in enumerate(self.workers):
            if worker.killed_at is None and not worker.alive() and number not in self.reported_exits:
                self.reported_exits.add(number)
                lines.append(f"worker {worker.pid} exited by itself (code {worker.process.returncode})")
        return lines

    def maybe_kill(self, infos: dict[int, JobInfo], bodies: list[Any], total: int) -> Kill | None:
        """Once a quarter of the jobs ended, SIGKILL the worker running the most jobs; start another."""
        if sum(1 for info in infos.values() if info.status in TERMINAL) < max(1, total // 4):
            return None
        running: dict[int, set[int]] = {worker.pid: set() for worker in self.workers if worker.alive()}
        for run in bodies:
            if (
                run.pid in running
                and run.finished_at is None
                and infos[run.job_id].status is JobStatus.RUNNING
            ):
                running[run.pid].add(run.job_id)
        pid = max(running, key=lambda pid: len(running[pid]), default=None)
        if pid is None or not running[pid]:
            return None
        victim = next(worker for worker in self.workers if worker.pid == pid)
        jobs = sorted(running[pid])
        at = victim.kill()
        self.note(f"SIGKILL worker {victim.pid} while it runs job(s) {', '.join(map(str, jobs))}")
        line = self.chaos.strike()
        if line:
            self.note(line)
        replacement = self.spawn()
        return Kill(victim.pid, at, jobs, replacement.pid)

    def tally(
        self,
        client: httpx.Client,
        accepted: dict[str, dict[str, Any]],
        *,
        refused: dict[str, int],
        infos: dict[int, JobInfo],
        kill: Kill | None,
        dashboard: str,
    ) -> dict[str, Any]:
        by_file = {file_id: infos[info["job"]] for file_id, info in accepted.items()}
        bodies = read_runs(self.db, infos)
        outcomes = job_outcomes(infos.values())
        checks = result_checks(self.db, by_file, bodies)
        db_stats = client.get("/ops/db").json()
        advice = client.get("/ops/db/advice").json()
        storage = client.get("/ops/storage/stats").json()
        logs = [path.read_text(errors="replace") for path in sorted(self.folder.glob("*.log"))]
        return {
            "wall_seconds": round(time.monotonic() - self.started, 1),
            "backends": self.backends(),
            "dashboard": dashboard,
            "uploads": {
                "sent": len(accepted) + sum(refused.values()),
                "accepted": len(accepted),
                "refused": refused,
            },
            "jobs": {**outcomes, "refused_at_upload": sum(refused.values()), **checks},
            "job_attempts": sum(info.attempts for info in infos.values()),
            "failures": failure_reasons(infos.values()),
            "worker_kill": kill_cost(kill, self.options.lease, infos, bodies),
            "workers": {
                "started": len(self.workers),
                "killed_by_the_demo": int(kill is not None),
                "exited_by_themselves": len(self.reported_exits),
            },
            "http": sum_host_stats(self.db, [worker.pid for worker in self.workers]),
            "upstreams": {
                name: self.upstream.outcomes(name) for name in ("transcribe", "clips", "thumbnails")
            },
            "cache": self.cache_figures(),
            "database": database_figures(db_stats, advice),
            "storage": storage_figures(storage, [*SHOWS, "guest-spot"]),
            "redis": self.chaos.summary(logs),
            "events": self.events,
        }

    def backends(self) -> dict[str, str]:
        database = self.db.info()
        where = "embedded, a temp file" if self.embedded_db else "BUTTRESS_DATABASE_URL"
        return {
            "database": f"{database.get('backend')} ({where})",
            "redis": self.chaos.in_use or "none (memory cache, limiter and breakers in each process)",
            "files": "local disk, a temp directory",
        }

    def cache_figures(self) -> dict[str, Any]:
        """The workers' cache counters added up per namespace (each worker wrote its own)."""
        query = select(cache_stats).where(cache_stats.c.pid.in_([worker.pid for worker in self.workers]))
        with self.db.session() as session:
            found = session.execute(query).mappings().all()
        spaces: dict[str, dict[str, int]] = {}
        for row in found:
            space = spaces.setdefault(row["namespace"], {"lookups": 0, "hits": 0})
            space["lookups"] += row["lookups"]
            space["hits"] += row["hits"]
        lookups, hits = sum(v["lookups"] for v in spaces.values()), sum(v["hits"] for v in spaces.values())
        return {
            "backend": sorted({row["backend"] for row in found}),
            "namespaces": spaces,
            "lookups": lookups,
            "hits": hits,
            "hit_rate": round(hits / lookups, 3) if lookups else 0.0,
        }


_DML = {"select", "insert", "update", "delete"}
"""The statements the report lists by name (BEGIN and PRAGMA count in the totals only)."""


class _Quiet:
    """A stand-in for rich's Live when nothing is shown (``--json``)."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, renderable: object) -> None:
        return None


def _infos(names: dict[int, str]) -> dict[int, JobInfo]:
    listed = get_jobs().list(queue=QUEUE, limit=len(names) + 100)
    found = {info.id: info for info in listed if info.id in names}
    for job_id in names.keys() - found.keys():
        found[job_id] = get_jobs().get(job_id)
    return found


def database_figures(stats: dict[str, Any], advice: dict[str, Any]) -> dict[str, Any]:
    """The app process's statements (``/ops/db``) and the index advice for them (``/ops/db/advice``)."""
    statements = stats.get("statements", [])
    return {
        "backend": stats.get("backend"),
        "statement_shapes": len(statements),
        "statements": sum(entry["calls"] for entry in statements),
        "top": [
            {
                "sql": entry["sql"],
                "calls": entry["calls"],
                "total_ms": round(entry["total_seconds"] * 1000, 1),
                "p95_ms": round(entry["p95_seconds"] * 1000, 2),
            }
            for entry in [entry for entry in statements if entry["operation"] in _DML][:5]
        ],
        "slow_threshold_ms": SLOW_MS,
        "slow": [
            {
                "sql": entry.get("sql"),
                "ms": round(entry.get("seconds", 0) * 1000, 1),
                "site": entry.get("site"),
            }
            for entry in stats.get("slow", [])
        ],
        "n_plus_one": len(stats.get("n_plus_one", [])),
        "advice": [
            {
                "ddl": index["ddl"],
                "verified": index["verified"],
                "calls": index["calls"],
                "reason": index["reason"],
            }
            for index in advice.get("indexes", [])
        ],
    }


def storage_figures(storage: dict[str, Any], shows: list[str]) -> dict[str, Any]:
    """Files and bytes as ``/ops/storage/stats`` says, and each show's quota use as the store counts it."""
    usage = {show: get_files().usage(show) for show in shows}
    return {
        "stored_files": storage["stored"]["files"],
        "stored_bytes": storage["stored"]["bytes"],
        "archived_files": storage["archived"]["files"],
        "in_flight": storage["in_flight"],
        "location": storage["location"]["kind"],
        "quota_by_show": {show: {"used": scope.used, "quota": scope.quota} for show, scope in usage.items()},
    }
