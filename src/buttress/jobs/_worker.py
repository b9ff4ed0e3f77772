"""The worker: leases due jobs, runs them (async on the loop, sync in threads), and records what came of it.

One loop does the database work: each turn applies the attempts that ended since the last turn and
leases as many due jobs as there are free slots, in one transaction. Beside it, small loops renew
leases (heartbeat), take back the jobs of workers that stopped heartbeating (sweep), store coalesced
progress and look for cancel requests. PostgreSQL wakes an idle worker by NOTIFY; SQLite workers are
woken directly by defers in their own process and poll (``jobs.poll_interval``) for the others.

A lost lease is final: its fencing token moved on, so a late completion is a no-op and the worker
cancels its copy of the job. ``stop()`` (SIGTERM) stops leasing, lets running jobs finish for
``jobs.grace`` seconds, then releases the rest to the queue unrun.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import make_url

from buttress.container import get_container
from buttress.errors import BackendUnavailable, ButtressError, ValidationError
from buttress.jobs._context import JobCancelled, JobContext, enter, leave
from buttress.jobs._jobs import stats_of
from buttress.jobs._payload import dump_result, load_args
from buttress.jobs._pg_turn import PostgresTurns
from buttress.jobs._plans import (
    Completion,
    FetchRequest,
    Leased,
    cancel_requests_plan,
    complete_plan,
    fetch_plan,
    heartbeat_plan,
    progress_plan,
    register_worker_plan,
    release_plan,
    stats_plan,
    sweep_plan,
    unregister_worker_plan,
)
from buttress.jobs._process import run_in_subprocess
from buttress.jobs._scheduler import Scheduler
from buttress.jobs._states import JobStatus, after_failure
from buttress.jobs._task import DEFAULT_BACKOFF

if TYPE_CHECKING:
    from buttress.db import Database
    from buttress.jobs._jobs import Jobs
    from buttress.jobs._task import Task

__all__ = ["Worker"]

_log = logging.getLogger("buttress.jobs")
_PROGRESS_EVERY = 0.5
_START_CHECK = 0.05  # seconds between looks at a starting worker's thread, so a failed start ends the wait
_BACKLOG_EVERY = 10.0
_PREFETCH_BELOW = 0.02
_STATE_COUNTERS = {
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.RETRYING: "retried",
    JobStatus.CANCELLED: "cancelled",
}
"""The :class:`WorkerState` counter an applied completion moves (any other outcome: ``failed``)."""


@dataclass(slots=True)
class _Running:
    leased: Leased
    task: Task[..., Any]
    ctx: JobContext
    started: float
    future: asyncio.Task[None] | None = None
    released: bool = False
    lost: bool = False


@dataclass(slots=True)
class WorkerState:
    """What a worker has done since it started (for ``check()`` and the ops server)."""

    started_at: float = 0.0
    last_fetch: float = 0.0
    last_heartbeat: float = 0.0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)


class Worker:
    """Runs the jobs of ``queues`` (default: every queue of a defined job), ``concurrency`` at a time.

    ``await worker.run()`` until :meth:`stop`; ``worker.run_sync()`` in a process of its own (SIGTERM
    and SIGINT stop it gracefully); ``with worker.running():`` in a background thread (tests, apps that
    embed a worker). ``run(burst=True)`` returns once nothing is due and nothing runs.
    """

    def __init__(
        self,
        jobs: Jobs,
        *,
        queues: Sequence[str] | None,
        concurrency: int,
        tasks: Sequence[str] | None,
        name: str,
        scheduler: bool = False,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError(
                f"concurrency must be a positive int, got {concurrency!r}", field="concurrency"
            )
        self.jobs = jobs
        self.store = jobs.store
        self.clock = jobs.clock
        self.settings = jobs.settings
        registry = jobs.registry
        self.id = name
        self.concurrency = concurrency
        known = registry.tasks
        self.task_names = tuple(sorted(tasks if tasks is not None else known))
        for task_name in self.task_names:
            registry.task(task_name)  # NotFoundError now, not a job stuck later
        self.queues = tuple(
            sorted(queues if queues is not None else {known[n].queue for n in self.task_names})
        )
        self._task_limits = {n: limit for n in self.task_names if (limit := known[n].concurrency) is not None}
        self._queue_limits = {q: n for q, n in registry.queue_limits().items() if q in self.queues}
        self.lease = self.settings.lease
        self.heartbeat_every = self.settings.heartbeat or self.lease / 3
        self.state = WorkerState()
        self._running: dict[int, _Running] = {}
        self._ready: collections.deque[Leased] = collections.deque()  # leased ahead, not started yet
        self._ready_at: dict[int, float] = {}  # when each was leased (monotonic)
        limited = bool(self._task_limits or self._queue_limits)
        prefetch = self.settings.prefetch
        self._prefetch = 0 if limited else (concurrency if prefetch is None else prefetch)
        self._typical_run: float | None = None  # a moving average of job run times, seconds
        self._backlog_at = 0.0  # when the sweep last refreshed the backlog gauges
        self._completions: list[Completion] = []
        self._stopping = False
        self._hard_stop = False
        self._wake = asyncio.Event()  # made again by run(): it binds to the loop that waits on it
        self._cancel_check = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turns: PostgresTurns | None = None
        self._listen_at = _listen_conninfo(jobs) if self.store.dialect.postgres else None
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="buttress-job")
        self._in_threads = 0  # sync calls of this worker running in its threads now
        self._in_threads_lock = threading.Lock()
        self._rng = random.Random()
        self.ready = threading.Event()
        self.stopped = threading.Event()
        # real-time waits between passes, as the other side loops: a test's FakeClock is not moved by them
        self.scheduler = Scheduler(jobs, wait_on_clock=False) if scheduler else None

    def __repr__(self) -> str:
        return f"<Worker {self.id} queues={list(self.queues)} concurrency={self.concurrency}>"

    # -- control ------------------------------------------------------------------------------------

    def stop(self, *, hard: bool = False) -> None:
        """Stop leasing; running jobs get ``jobs.grace`` seconds (none when ``hard``). Thread-safe."""
        if self.scheduler is not None:
            self.scheduler.stop()
        self._stopping = True
        self._hard_stop = self._hard_stop or hard
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def _poke_cancels(self) -> None:
        loop, check = self._loop, self._cancel_check
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(check.set)

    def run_sync(self, *, burst: bool = False) -> None:
        """Run on a new event loop in this thread; SIGTERM/SIGINT stop gracefully, a second one at once.

        Meant as a process's main loop: a sync job still running in a thread after the grace period was
        released to the queue and cannot be stopped from outside, so the process exits without waiting
        for it (``os._exit``) rather than hang on it.
        """
        import signal  # noqa: PLC0415 - only the process entry point installs handlers

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, lambda: self.stop(hard=self._stopping))
            await self.run(burst=burst)

        asyncio.run(main())
        if self._in_threads:  # this worker's own sync jobs, still running: not other workers' idle threads
            _log.warning(
                "jobs: worker %s leaves sync jobs that ignored the stop behind (they were released)", self.id
            )
            logging.shutdown()
            os._exit(0)

    @contextlib.contextmanager
    def running(self, timeout: float = 10.0) -> Iterator[Worker]:
        """Run in a background thread for the block; stopped (gracefully) when it ends.

        A thread that fails before it is ready (its database cannot be reached, say) raises its own
        error here as soon as it exits, rather than a TimeoutError after ``timeout`` seconds.
        """
        failure: list[BaseException] = []

        def target() -> None:
            try:
                asyncio.run(self.run())
            except BaseException as exc:
                if self.ready.is_set():
                    raise  # after the start: the thread's own report (threading.excepthook), as before
                failure.append(exc)  # before it: the caller waiting for the start raises it

        thread = threading.Thread(target=target, name=f"worker {self.id}", daemon=True)
        thread.start()
        if not self._started(thread, timeout):
            self.stop(hard=True)
            if failure:
                raise self._start_failure(failure[0])
            if not thread.is_alive():
                raise RuntimeError(f"worker {self.id} stopped before it was ready")
            raise TimeoutError(f"worker {self.id} did not start within {timeout} s")
        try:
            yield self
        finally:
            self.stop()
            thread.join(self.settings.grace + timeout)

    def _started(self, thread: threading.Thread, timeout: float) -> bool:
        """Wait until the worker is ready (True), its thread exits or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(min(_START_CHECK, max(0.0, deadline - time.monotonic()))):
            if not thread.is_alive() or time.monotonic() >= deadline:
                return self.ready.is_set()
        return True

    def _start_failure(self, error: BaseException) -> BaseException:
        """The error a failed start raises: an unreachable database named (password masked)."""
        if isinstance(error, BackendUnavailable):
            database = self.store.db.urls.masked
            failed = BackendUnavailable(
                f"worker {self.id} could not start: its database {database} cannot be reached ({error})",
                backend=error.backend,
                context={**error.context, "database": database},
            )
            failed.__cause__ = error
            return failed
        return error

    # -- the main loop ------------------------------------------------------------------------------

    async def run(self, *, burst: bool = False) -> None:
        """Lease and run jobs until :meth:`stop` (or, with ``burst``, until nothing is due or running)."""
        await self.jobs.aensure_schema()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._cancel_check = asyncio.Event()
        remove_waker = self.jobs.add_waker(self._poke_all)
        now = self.clock.time()
        self.state.started_at = now
        row = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": ",".join(self.queues),
            "concurrency": self.concurrency,
            "now": now,
        }
        await self.store.arun(lambda: register_worker_plan(row))
        helpers = [
            asyncio.create_task(self._every(self.heartbeat_every, self._heartbeat), name="heartbeat"),
            asyncio.create_task(self._every(max(1.0, min(5.0, self.lease / 4)), self._sweep), name="sweep"),
            asyncio.create_task(self._every(_PROGRESS_EVERY, self._store_progress), name="progress"),
            asyncio.create_task(self._cancel_loop(), name="cancels"),
        ]
        if self.scheduler is not None and not burst:  # a burst drains what is due; it fires nothing new
            helpers.append(asyncio.create_task(self.scheduler.arun(), name="scheduler"))
        listening = asyncio.Event()
        if self.store.dialect.postgres:
            self._turns = PostgresTurns(
                _conninfo(self.store.db), pooled=self.store.db.settings.pooler != "none"
            )
        if self.store.dialect.postgres and self._listen_at is None:
            _log.warning(
                "jobs: worker %s polls every %s s: db.pooler is set and jobs.listen_url is not (a "
                "pooler cannot hold a LISTEN; set jobs.listen_url to the server itself)",
                self.id,
                self.settings.poll_interval,
            )
        if self._listen_at is not None:
            helpers.append(asyncio.create_task(self._listen(listening.set), name="listen"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listening.wait(), 5.0)
        self.ready.set()
        try:
            await self._fetch_loop(burst)
        finally:
            await self._shutdown(helpers)
            remove_waker()
            self.stopped.set()

    def _poke_all(self) -> None:
        self._poke()
        self._poke_cancels()

    def _request(self, slots: int) -> FetchRequest:
        return FetchRequest(
            worker=self.id,
            queues=self.queues,
            tasks=self.task_names,
            slots=slots,
            lease=self.lease,
            task_limits=self._task_limits,
            queue_limits=self._queue_limits,
        )

    def _idle_wait(self) -> float:
        if self._listen_at is not None:
            return min(1.0, max(self.settings.poll_interval, 0.25))  # NOTIFY wakes; this finds delayed jobs
        return self.settings.poll_interval

    def _ahead(self) -> int:
        """Jobs to lease beyond the free slots: only while jobs run shorter than a few round trips.

        Leasing ahead lets the next jobs run while the database answers the turn; for long jobs it
        would only keep them from an idle worker elsewhere, so it stops once jobs take 20 ms or more.
        """
        if not self._prefetch or self._typical_run is None or self._typical_run >= _PREFETCH_BELOW:
            return 0
        return self._prefetch

    async def _fetch_loop(self, burst: bool) -> None:
        pause = 0.1
        while not self._stopping:
            self._wake.clear()
            while self._ready and len(self._running) < self.concurrency:
                job = self._ready.popleft()
                self._ready_at.pop(job.id, None)
                self._start(job)  # it runs while the turn below waits on the database
            slots = self.concurrency - len(self._running)
            wanted = max(0, slots + self._ahead() - len(self._ready))
            completions, self._completions = self._completions, []
            leased: list[Leased] = []
            if wanted > 0 or completions:
                now = self.clock.time()
                request = self._request(wanted)
                try:
                    leased = await self._turn(request, completions, now)
                except ButtressError as exc:
                    self._completions[:0] = completions
                    self._note_error("fetch", exc)
                    await self._pause(pause)
                    pause = min(pause * 2, 10.0)
                    continue
                pause = 0.1
                self.state.last_fetch = now
                self._announce(completions)
                for job in leased:
                    if len(self._running) < self.concurrency:
                        self._start(job)
                    else:
                        self._ready.append(job)
                        self._ready_at[job.id] = self.clock.monotonic()
                if len(leased) == wanted and wanted > 0:
                    continue  # a full batch: more may be waiting
            if burst and not leased and not self._running and not self._completions and not self._ready:
                return
            if self._completions:
                continue
            await self._pause(self._idle_wait() if wanted > 0 else None)

    async def _turn(self, request: FetchRequest, completions: list[Completion], now: float) -> list[Leased]:
        if self._turns is not None and not request.task_limits and not request.queue_limits:
            _, leased = await self._turns.turn(request, completions, now)
            return leased
        return await self.store.arun(
            functools.partial(fetch_plan, request, completions, now, self.store.dialect)
        )

    async def _pause(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    # -- running one job ------------------------------------------------------------------------------

    def _start(self, leased: Leased) -> None:
        task = self.jobs.registry.task(leased.task)
        ctx = JobContext(
            job_id=leased.id,
            task=leased.task,
            queue=leased.queue,
            attempt=leased.attempts,
            max_attempts=leased.max_attempts,
            token=leased.token,
            events=self.jobs.events,
        )
        run = _Running(leased, task, ctx, self.clock.monotonic())
        stale = self._running.get(leased.id)
        if stale is not None:  # swept while we ran it and leased again by us: the old copy lost its lease
            self._lose(stale)
        self._running[leased.id] = run
        run.future = asyncio.create_task(self._execute(run), name=f"job {leased.id}")
        self.jobs.telemetry.status(leased.id, leased.task, leased.queue, "running", attempt=leased.attempts)

    async def _execute(self, run: _Running) -> None:
        ctx = run.ctx
        error: BaseException | None = None
        status: JobStatus | None = None
        try:
            result = dump_result(await self._call(run))
        except asyncio.CancelledError:
            if run.released or run.lost:
                self._finish(run, None)
                return
            status, error, result = JobStatus.CANCELLED, None, None
        except JobCancelled as exc:
            if run.released or run.lost:
                self._finish(run, None)
                return
            if ctx.cancel_reason == "cancelled":
                status, error, result = JobStatus.CANCELLED, None, None
            else:
                error, result = TimeoutError(str(exc)), None
        except TimeoutError as exc:
            error, result = exc, None
        except Exception as exc:  # noqa: BLE001 - the job's failure is data: recorded, retried or not
            error, result = exc, None
        self._finish(run, self._completion(run, status, result, error))

    async def _call(self, run: _Running) -> Any:
        leased, task, ctx = run.leased, run.task, run.ctx
        positional, keywords = load_args(leased.args)
        call = (ctx, *positional) if task.wants_context else tuple(positional)
        timeout = leased.timeout
        if task.is_async:
            async with get_container().scope(f"job {task.name}"):
                token = enter(ctx)
                try:
                    if timeout is None:
                        return await task.fn(*call, **keywords)
                    try:
                        async with asyncio.timeout(timeout):
                            return await task.fn(*call, **keywords)
                    except TimeoutError:
                        raise TimeoutError(f"timed out after {timeout:g} s") from None
                finally:
                    leave(token)
        loop = asyncio.get_running_loop()
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, ctx.request_cancel, f"timed out after {timeout:g} s")
        try:
            if task.process:
                module = getattr(task.fn, "__module__", "__main__")
                return await loop.run_in_executor(
                    self._threads, self._counted, run_in_subprocess, module, task.name, leased.args, ctx
                )
            value = await loop.run_in_executor(
                self._threads, self._counted, _call_sync, task, ctx, call, keywords
            )
            if ctx.cancelled and (ctx.cancel_reason or "").startswith("timed out"):
                raise JobCancelled(ctx.cancel_reason or "timed out")  # it ran past its timeout: not a success
            return value
        finally:
            if timer is not None:
                timer.cancel()

    def _counted(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in a pool thread, counted in ``_in_threads`` while it runs."""
        with self._in_threads_lock:
            self._in_threads += 1
        try:
            return fn(*args)
        finally:
            with self._in_threads_lock:
                self._in_threads -= 1

    def _completion(
        self, run: _Running, status: JobStatus | None, result: str | None, error: BaseException | None
    ) -> Completion:
        leased = run.leased
        now = self.clock.time()
        ttl = now + (leased.result_ttl or self.settings.result_ttl)
        last = run.ctx.last_progress
        task, queue = leased.task, leased.queue
        if status is JobStatus.CANCELLED:
            return Completion(
                leased.id, leased.token, status, error="cancelled", expires_at=ttl, task=task, queue=queue
            )
        if error is None:
            return Completion(
                leased.id, leased.token, JobStatus.SUCCEEDED, result=result, expires_at=ttl, progress=1.0,
                message=last[1] if last else None, task=task, queue=queue,
            )  # fmt: skip
        policy = run.task.retry
        retryable = policy.retries(error) if policy is not None else isinstance(error, Exception)
        backoff = policy.backoff if policy is not None and policy.backoff is not None else DEFAULT_BACKOFF
        delay = backoff.delay(leased.attempts, 0.0, self._rng) if retryable else 0.0
        outcome = after_failure(
            attempts=leased.attempts,
            max_attempts=leased.max_attempts,
            retryable=retryable,
            delay=delay,
            now=now,
        )
        text = f"{type(error).__name__}: {error}"[:2000]
        return Completion(
            leased.id, leased.token, outcome.status, error=text, run_at=outcome.run_at,
            expires_at=None if outcome.status is JobStatus.RETRYING else ttl,
            progress=last[0] if last else None, message=last[1] if last else None, task=task, queue=queue,
        )  # fmt: skip

    def _finish(self, run: _Running, completion: Completion | None) -> None:
        if self._running.get(run.leased.id) is run:  # not the newer copy of a job leased again
            del self._running[run.leased.id]
        if completion is not None:
            self._completions.append(completion)
            seconds = self.clock.monotonic() - run.started
            typical = self._typical_run
            self._typical_run = seconds if typical is None else typical + 0.1 * (seconds - typical)
            self.jobs.telemetry.finished(run.leased.queue, run.leased.task, completion.status.value, seconds)
        self._wake.set()  # on the loop: no thread-safe hand-off (a write to the loop's self-pipe) needed

    def _announce(self, completions: Sequence[Completion]) -> None:
        for done in completions:
            counter = _STATE_COUNTERS.get(done.status, "failed")
            setattr(self.state, counter, getattr(self.state, counter) + 1)
            self.jobs.telemetry.status(done.id, done.task, done.queue, done.status.value)

    # -- side loops -----------------------------------------------------------------------------------

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await action()
            except ButtressError as exc:
                self._note_error(action.__name__.strip("_"), exc)

    async def _heartbeat(self) -> None:
        asked = self.clock.monotonic()
        now = self.clock.time()
        kept = await self.store.arun(lambda: heartbeat_plan(self.id, now, self.lease))
        self.state.last_heartbeat = now
        held = {job_id: (token, cancel) for job_id, token, cancel in kept}
        for job in list(self._ready):
            leased_before = self._ready_at.get(job.id, asked) < asked  # not leased after the renewal read
            if leased_before and held.get(job.id, (None, False))[0] != job.token:
                self._ready.remove(job)  # taken back while it waited here: it runs elsewhere
                self._ready_at.pop(job.id, None)
        for job_id, run in list(self._running.items()):
            if job_id not in held or held[job_id][0] != run.leased.token:
                if self.clock.monotonic() - run.started > 1.0:  # leased after the renewal read: not lost
                    self._lose(run)
            elif held[job_id][1]:
                self._cancel_local(run, "cancelled")

    def _lose(self, run: _Running) -> None:
        if run.lost:
            return
        run.lost = True
        self.state.lost += 1
        _log.warning(
            "jobs: lost the lease of job %s (%s); its result will not be recorded",
            run.leased.id,
            run.task.name,
        )
        self.jobs.telemetry.finished(run.leased.queue, run.leased.task, "lost", None)
        self._cancel_local(run, "lease lost")

    def _cancel_local(self, run: _Running, reason: str) -> None:
        if run.ctx.cancelled:
            return
        run.ctx.request_cancel(reason)
        if run.task.is_async and run.future is not None:
            run.future.cancel()

    async def _sweep(self) -> None:
        now = self.clock.time()
        swept = await self.store.arun(
            lambda: sweep_plan(now, self.settings.result_ttl, self.lease * 10, self.store.dialect)
        )
        self.jobs.telemetry.reclaimed(len(swept.reclaimed))
        for job_id, status, task, queue in swept.reclaimed:
            _log.warning("jobs: job %s (%s) lost its worker; now %s", job_id, task, status.value)
            self.jobs.telemetry.status(job_id, task, queue, status.value, reason="lease expired")
        if any(status is JobStatus.RETRYING for _, status, _, _ in swept.reclaimed):
            self._wake.set()
        if now - self._backlog_at >= _BACKLOG_EVERY:
            self._backlog_at = now
            counts, _ = await self.store.arun(lambda: stats_plan(now), write=False)
            queues = stats_of(now, counts, []).queues
            # Every queue served or seen gets a value: a drained one reads 0, not its last backlog.
            depth = dict.fromkeys(self.queues, 0) | {name: queue.depth for name, queue in queues.items()}
            oldest = {name: queue.oldest_seconds for name, queue in queues.items()}
            self.jobs.telemetry.backlog(depth, oldest)

    async def _store_progress(self) -> None:
        updates = []
        for run in list(self._running.values()):
            latest = run.ctx.take_progress()
            if latest is not None:
                updates.append((run.leased.id, run.leased.token, latest[0], latest[1]))
        if updates:
            await self.store.arun(lambda: progress_plan(updates))

    async def _cancel_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cancel_check.wait(), self.settings.cancel_poll_interval)
            self._cancel_check.clear()
            if not self._running and not self._ready:
                continue
            try:
                requested = await self.store.arun(lambda: cancel_requests_plan(self.id), write=False)
            except ButtressError as exc:
                self._note_error("cancels", exc)
                await asyncio.sleep(1.0)
                continue
            for job_id in requested:
                run = self._running.get(job_id)
                if run is not None:
                    self._cancel_local(run, "cancelled")
            self._cancel_waiting(set(requested))

    def _cancel_waiting(self, requested: set[int]) -> None:
        """Cancelled jobs leased ahead and not started: recorded cancelled, never run."""
        for job in [job for job in self._ready if job.id in requested]:
            self._ready.remove(job)
            self._ready_at.pop(job.id, None)
            ttl = self.clock.time() + (job.result_ttl or self.settings.result_ttl)
            self._completions.append(
                Completion(job.id, job.token, JobStatus.CANCELLED, error="cancelled", expires_at=ttl,
                           task=job.task, queue=job.queue)
            )  # fmt: skip
            self._wake.set()

    async def _listen(self, ready: Callable[[], None]) -> None:
        from buttress.jobs._listen import listen  # noqa: PLC0415 - psycopg, PostgreSQL workers only

        conninfo = self._listen_at
        assert conninfo is not None  # noqa: S101 - started only with a URL

        def on_wake(queue: str) -> None:
            if not queue or queue in self.queues:
                self._poke()

        def on_cancel(job_id: int) -> None:
            if job_id in self._running or any(job.id == job_id for job in self._ready):
                self._poke_cancels()

        await listen(conninfo, on_wake=on_wake, on_cancel=on_cancel, on_ready=ready)

    def _note_error(self, where: str, exc: BaseException) -> None:
        _log.warning("jobs: worker %s could not %s: %s", self.id, where, exc)
        self.state.errors = [*self.state.errors[-9:], f"{where}: {type(exc).__name__}: {exc}"]

    # -- stopping -------------------------------------------------------------------------------------

    async def _shutdown(self, helpers: list[asyncio.Task[Any]]) -> None:
        running = [run.future for run in self._running.values() if run.future is not None]
        if running and not self._hard_stop:
            await self._drain(running)
        leftovers = list(self._running.values())
        for run in leftovers:
            run.released = True
            self._cancel_local(run, "worker stopping")
        held = [(run.leased.id, run.leased.token) for run in leftovers]
        held += [(job.id, job.token) for job in self._ready]  # leased ahead, never started
        self._ready.clear()
        self._ready_at.clear()
        for run in leftovers:
            self._running.pop(run.leased.id, None)
        now = self.clock.time()
        try:
            await self._record_completions()
            if held:
                await self.store.arun(lambda: release_plan(held, now, self.store.dialect))
            await self.store.arun(lambda: unregister_worker_plan(self.id))
        except ButtressError as exc:
            self._note_error("stop cleanly", exc)  # the sweeper takes the jobs back after their lease
        if self.scheduler is not None:
            await self.scheduler.ahalt()  # let a pass in a database call finish before its task is cancelled
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if self._turns is not None:
            await self._turns.close()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _drain(self, running: list[asyncio.Task[None]]) -> None:
        deadline = self.clock.monotonic() + self.settings.grace
        pending = set(running)
        while pending and not self._hard_stop:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                return
            _, pending = await asyncio.wait(pending, timeout=min(left, 0.5))
            try:
                await self._record_completions()  # what finished while we wait
            except ButtressError as exc:
                self._note_error("complete", exc)

    async def _record_completions(self) -> None:
        """Apply the attempts that ended, outside a turn; on a failure they stay for the next try."""
        completions, self._completions = self._completions, []
        if not completions:
            return
        try:
            await self.store.arun(functools.partial(complete_plan, completions, self.clock.time()))
        except ButtressError:
            self._completions[:0] = completions
            raise
        self._announce(completions)


def _conninfo(db: Database) -> str:
    """The libpq URL of ``db`` (PostgreSQL) for the worker's own connections."""
    return db.urls.sync.set(drivername="postgresql").render_as_string(hide_password=False)


def _listen_conninfo(jobs: Jobs) -> str | None:
    """The libpq URL of the LISTEN connection: ``jobs.listen_url``, else the database's unless it is a
    pooler's (a transaction pooler hands the LISTEN's session to others: the worker polls instead)."""
    if jobs.settings.listen_url is not None:
        return (
            make_url(jobs.settings.listen_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
    return None if jobs.store.db.settings.pooler != "none" else _conninfo(jobs.store.db)


def _call_sync(task: Task[..., Any], ctx: JobContext, call: tuple[Any, ...], keywords: dict[str, Any]) -> Any:
    with get_container().scope(f"job {task.name}"):
        token = enter(ctx)
        try:
            return task.fn(*call, **keywords)
        finally:
            leave(token)
