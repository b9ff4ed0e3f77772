"""Timeout: async calls are cancelled; sync calls run in a worker that is abandoned at the deadline."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from buttress.errors import DeadlineExceeded, ValidationError
from buttress.resilience import _timeout
from buttress.resilience._timeout import Timeout, _Job, _Workers
from tests.resilience._observed import Observed

BOUND = 5.0  # upper bound for waits that should end much sooner; never a timing assertion

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def make(observed: Observed, seconds: float) -> Timeout:
    return Timeout(seconds, name="api", metrics=observed.registry, events=observed.bus)


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), True, "5", None])
def test_bad_seconds_name_the_field_and_the_fix(seconds: object) -> None:
    with pytest.raises(
        ValidationError, match=r"seconds must be a finite number of seconds > 0.*e\.g\. 5\.0"
    ) as caught:
        Timeout(seconds)  # type: ignore[arg-type]
    assert caught.value.field == "seconds"


def test_bad_name_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        Timeout(1, name="")
    assert caught.value.field == "name"


def test_settings_and_repr() -> None:
    timeout = Timeout(2, name="api")
    assert timeout.seconds == 2.0
    assert isinstance(timeout.seconds, float)
    assert repr(timeout) == "Timeout(2.0, name='api')"


# -- sync ---------------------------------------------------------------------------------------------


def test_sync_call_returns_in_time(observed: Observed) -> None:
    timeout = make(observed, BOUND)
    caller = threading.get_ident()
    assert timeout.call(lambda a, b=0: (a + b, threading.get_ident() != caller), 1, b=2) == (3, True)
    assert observed.calls("timeout") == {"success": 1.0}


def test_sync_exceptions_propagate(observed: Observed) -> None:
    timeout = make(observed, BOUND)
    error = KeyError("missing")

    def boom() -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        timeout.call(boom)
    assert caught.value is error
    assert timeout.telemetry.counts() == {"success": 0, "failure": 1, "timeout": 0}


def test_sync_deadline_abandons_the_call_which_still_finishes(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress.resilience._timeout")
    timeout = make(observed, 0.05)
    go_on, finished = threading.Event(), threading.Event()

    def slow() -> str:
        go_on.wait(BOUND)
        finished.set()
        return "late"

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        timeout.call(slow)
    elapsed = time.monotonic() - started
    assert 0.05 <= elapsed < 0.15
    assert "timeout 'api'" in str(caught.value)
    assert "slow did not finish within 0.05 s" in str(caught.value)
    assert "keeps running in a background thread" in str(caught.value)
    assert caught.value.context == {"name": "api", "seconds": 0.05}
    assert caught.value.status == 504
    assert not finished.is_set()

    go_on.set()
    assert finished.wait(BOUND)  # the abandoned call ran to its end
    wait_until(lambda: "result was discarded" in caplog.text)
    assert "abandoned call to" in caplog.text
    assert timeout.telemetry.counts()["timeout"] == 1
    [(topic, payload)] = observed.events()
    assert topic == "resilience.timeout.timed_out"
    assert payload["key"] == "api"
    assert payload["seconds"] == 0.05
    assert payload["function"].endswith("slow")


def test_abandoned_exception_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress.resilience._timeout")
    go_on = threading.Event()

    def fail_late() -> None:
        go_on.wait(BOUND)
        raise ValueError("too late to matter")

    with pytest.raises(DeadlineExceeded):
        Timeout(0.01).call(fail_late)
    go_on.set()
    wait_until(lambda: "exception was discarded" in caplog.text)
    assert "ValueError: too late to matter" in caplog.text


def test_a_hung_call_does_not_hold_up_later_calls() -> None:
    timeout = Timeout(0.02)
    go_on = threading.Event()
    with pytest.raises(DeadlineExceeded):
        timeout.call(go_on.wait, BOUND)
    started = time.monotonic()
    assert Timeout(BOUND).call(lambda: "fresh worker") == "fresh worker"
    assert time.monotonic() - started < 1.0
    go_on.set()


def test_context_variables_are_copied_into_the_worker() -> None:
    token = request_id.set("req-42")
    try:
        seen = Timeout(BOUND).call(request_id.get)
    finally:
        request_id.reset(token)
    assert seen == "req-42"

    def change() -> str:
        request_id.set("changed")
        return request_id.get()

    assert Timeout(BOUND).call(change) == "changed"
    assert request_id.get() == "-"  # the worker's changes stay in its copy


def test_idle_workers_are_reused() -> None:
    timeout = Timeout(BOUND)
    timeout.call(int)  # make sure one worker exists and is idle
    before = _timeout._workers.threads
    for number in range(20):
        assert timeout.call(abs, -number) == number
    assert _timeout._workers.threads <= before  # no new thread per call (idle ones may retire)


def test_caller_wins_the_race_when_the_result_lands_at_the_deadline() -> None:
    job = _Job(lambda: "just in time", (), {})
    job.claim.pop()  # the caller's deadline passed first: the worker must drop the result
    job.run()
    assert job.result is None
    assert job.done.locked()


def test_results_landing_at_the_deadline_are_either_returned_or_abandoned() -> None:
    # Calls that take about as long as their timeout: the worker and the caller race to settle each
    # one. Every call must end promptly with its value or DeadlineExceeded, never hang or mix them up.
    outcomes = {"value": 0, "deadline": 0}
    for number in range(200):
        try:
            assert Timeout(0.0005).call(lambda n=number: time.sleep(0.0004) or n) == number
            outcomes["value"] += 1
        except DeadlineExceeded:
            outcomes["deadline"] += 1
    assert sum(outcomes.values()) == 200


def test_interrupted_caller_abandons_the_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress.resilience._timeout")
    main = threading.get_ident()
    assert main == threading.main_thread().ident, "signals are delivered to the main thread"
    running, go_on = threading.Event(), threading.Event()

    def slow() -> str:
        running.set()
        go_on.wait(BOUND)
        return "unwanted"

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def interrupt() -> None:
        running.wait(BOUND)
        signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, handler)
    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            Timeout(BOUND).call(slow)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        sender.join(BOUND)
    go_on.set()
    wait_until(lambda: "result was discarded" in caplog.text)


def test_pool_grows_while_busy_and_shrinks_when_idle() -> None:
    workers = _Workers(idle_seconds=0.05)
    gates = [threading.Event() for _ in range(3)]
    jobs = [_Job(gate.wait, (BOUND,), {}) for gate in gates]
    for job in jobs:
        workers.submit(job)
    wait_until(lambda: workers.threads == 3)  # every worker busy: each submit started one more
    for gate in gates:
        gate.set()
    for job in jobs:
        assert job.done.acquire(timeout=BOUND)
        assert job.result is True
    wait_until(lambda: workers.threads == 0)  # idle past idle_seconds: they leave


def test_worker_whose_idle_wait_ends_as_a_job_is_promised_stays() -> None:
    workers = _Workers(idle_seconds=0.02)
    first = _Job(int, (), {})
    workers.submit(first)
    assert first.done.acquire(timeout=BOUND)
    wait_until(lambda: workers._idle == 1)
    # Hold the pool's lock across the worker's idle timeout, and promise it a job meanwhile (what
    # submit does): when it gets the lock it must stay for the job, not leave.
    with workers._lock:
        time.sleep(0.1)  # let the idle wait run out; the worker now waits for this lock
        workers._idle -= 1
        second = _Job(str, (7,), {})
        workers._jobs.put(second)
    assert second.done.acquire(timeout=BOUND)
    assert second.result == "7"
    wait_until(lambda: workers.threads == 0)


FORK_SCRIPT = """
import os
from buttress.resilience._timeout import Timeout

Timeout(5).call(int)  # the parent now has an idle worker thread, which a forked child does not inherit
pid = os.fork()
if pid == 0:
    ok = False
    try:
        ok = Timeout(5).call(lambda: "child") == "child"
    finally:
        os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
raise SystemExit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_gets_its_own_workers() -> None:
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_reset_replaces_the_pool() -> None:
    before = _timeout._workers
    try:
        _timeout._reset_workers()
        assert _timeout._workers is not before
        assert Timeout(BOUND).call(lambda: 1) == 1
    finally:
        _timeout._workers = before


# -- async --------------------------------------------------------------------------------------------


async def test_async_call_returns_in_time(observed: Observed) -> None:
    async def fetch(key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    timeout = make(observed, BOUND)
    assert await timeout.acall(fetch, "a") == "A"
    assert observed.calls("timeout") == {"success": 1.0}


def test_an_async_call_that_never_suspends_arms_no_timer(observed: Observed) -> None:
    timeout = make(observed, BOUND)
    timers: list[object] = []

    class TimerLoop(asyncio.SelectorEventLoop):
        def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
            timers.append(callback)
            return super().call_at(when, callback, *args, context=context)

    async def answer() -> str:
        return "now"

    async def waits() -> str:
        await asyncio.sleep(0)
        return "later"

    loop = TimerLoop()
    try:
        assert loop.run_until_complete(timeout.acall(answer)) == "now"
        assert timers == []
        assert loop.run_until_complete(timeout.acall(waits)) == "later"
        assert len(timers) == 1  # the asyncio.timeout entered when it suspended
    finally:
        loop.close()
    assert timeout.telemetry.counts() == {"success": 2, "failure": 0, "timeout": 0}


async def test_async_deadline_cancels_the_awaited_coroutine(observed: Observed) -> None:
    timeout = make(observed, 0.05)
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(
        DeadlineExceeded, match=r"hang did not finish within 0\.05 s; it was cancelled"
    ) as caught:
        await timeout.acall(hang)
    assert time.monotonic() - started < 0.5
    assert cancelled.is_set()
    assert caught.value.__cause__ is None
    assert timeout.telemetry.counts() == {"success": 0, "failure": 0, "timeout": 1}
    assert [topic for topic, _ in observed.events()] == ["resilience.timeout.timed_out"]


async def test_async_errors_propagate_including_a_timeout_error_of_its_own(observed: Observed) -> None:
    timeout = make(observed, BOUND)

    async def own_timeout() -> None:
        raise TimeoutError("the server said so")

    async def broken() -> None:
        raise ValueError("bad")

    with pytest.raises(TimeoutError, match="the server said so"):
        await timeout.acall(own_timeout)
    with pytest.raises(ValueError, match="bad"):
        await timeout.acall(broken)
    assert timeout.telemetry.counts() == {"success": 0, "failure": 2, "timeout": 0}


async def test_outer_cancellation_is_not_a_deadline(observed: Observed) -> None:
    timeout = make(observed, BOUND)
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(timeout.acall(hang))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert timeout.telemetry.counts()["timeout"] == 0


async def test_async_with_bounds_a_block(observed: Observed) -> None:
    timeout = make(observed, 0.05)
    async with timeout:
        await asyncio.sleep(0)
    cancelled = False

    async def block() -> None:
        nonlocal cancelled
        async with timeout:
            try:
                await asyncio.sleep(BOUND)
            except asyncio.CancelledError:
                cancelled = True
                raise

    with pytest.raises(DeadlineExceeded, match=r"the block did not finish within 0\.05 s"):
        await block()
    assert cancelled
    with pytest.raises(KeyError):
        async with timeout:
            raise KeyError("inside")
    assert timeout.telemetry.counts() == {"success": 1, "failure": 1, "timeout": 1}
    assert timeout._entered == {}


async def test_one_timeout_object_serves_nested_blocks_and_many_tasks() -> None:
    outer, inner = Timeout(BOUND), Timeout(0.02)

    async def worker(number: int) -> int:
        async with outer:
            with pytest.raises(DeadlineExceeded):
                async with inner:
                    await asyncio.sleep(BOUND)
            async with outer:  # the same object, nested in one task
                await asyncio.sleep(0)
            return number

    assert await asyncio.gather(*(worker(n) for n in range(5))) == list(range(5))
    assert outer._entered == {}
    assert inner.telemetry.counts()["timeout"] == 5


async def test_async_with_needs_a_task() -> None:
    timeout = Timeout(1)
    loop = asyncio.get_running_loop()
    # Entering from a plain callback (no task) fails as asyncio.timeout does.
    future: asyncio.Future[None] = loop.create_future()

    def enter() -> None:
        coroutine = timeout.__aenter__()
        try:
            coroutine.send(None)
        except RuntimeError as exc:
            future.set_exception(exc)
        finally:
            coroutine.close()

    loop.call_soon(enter)
    with pytest.raises(RuntimeError, match="inside a task"):
        await future


# -- decorator ----------------------------------------------------------------------------------------


async def test_decorator_keeps_signatures_for_functions_and_methods() -> None:
    timeout = Timeout(BOUND)

    @timeout
    def add(a: int, b: int = 2) -> int:
        """Add."""
        return a + b

    @timeout
    async def aadd(a: int, *, b: int) -> int:
        return a + b

    class Service:
        @timeout
        def get(self, key: str) -> str:
            return key.upper()

        @timeout
        async def aget(self, key: str) -> str:
            return key * 2

    assert add(1) == 3
    assert await aadd(1, b=5) == 6
    assert Service().get("a") == "A"
    assert await Service().aget("b") == "bb"
    assert inspect.signature(add) == inspect.signature(add.__wrapped__)  # type: ignore[attr-defined]
    assert add.__name__ == "add"
    assert add.__doc__ == "Add."
    assert inspect.iscoroutinefunction(aadd)
    assert timeout.telemetry.counts()["success"] == 4
