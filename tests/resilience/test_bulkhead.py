"""Bulkhead: concurrency cap, bounded FIFO queue, expiry, threads and tasks sharing one bulkhead."""

from __future__ import annotations

import asyncio
import inspect
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import BulkheadFull, ValidationError
from buttress.resilience._bulkhead import (
    ACTIVE_METRIC,
    QUEUED_METRIC,
    Bulkhead,
    BulkheadSnapshot,
    _AsyncWaiter,
)
from buttress.resilience._telemetry import WAIT_METRIC
from tests.resilience._observed import Observed

BOUND = 5.0  # upper bound for waits that should end much sooner; never a timing assertion


def make(observed: Observed, max_concurrent: int = 1, **options: Any) -> Bulkhead:
    return Bulkhead(max_concurrent, name="db", metrics=observed.registry, events=observed.bus, **options)


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


async def await_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def start(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def join(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(BOUND)
        assert not thread.is_alive()


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "text"),
    [
        ({"max_concurrent": 0}, "max_concurrent", "max_concurrent must be an integer >= 1"),
        ({"max_concurrent": True}, "max_concurrent", "got True; e.g. 10"),
        ({"max_concurrent": 2.5}, "max_concurrent", "got 2.5"),
        ({"max_queued": -1}, "max_queued", "max_queued must be an integer >= 0"),
        ({"max_wait": -0.1}, "max_wait", "max_wait must be a finite number of seconds >= 0"),
        ({"max_wait": float("inf")}, "max_wait", "got inf; e.g. 1.0"),
        ({"max_wait": "1"}, "max_wait", "got '1'"),
        ({"name": "has space"}, "name", "name must be a non-empty string"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(options: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError, match=text) as caught:
        Bulkhead(**options)
    assert caught.value.field == field


async def test_bad_timeout_is_rejected_by_both_acquires() -> None:
    bulkhead = Bulkhead(1)
    with pytest.raises(ValidationError, match="timeout must be a finite number") as caught:
        bulkhead.acquire(timeout=-1)
    assert caught.value.field == "timeout"
    with pytest.raises(ValidationError, match="timeout must be"):
        await bulkhead.aacquire(timeout=float("nan"))
    assert bulkhead.snapshot().active == 0


def test_defaults_and_repr() -> None:
    bulkhead = Bulkhead()
    assert (bulkhead.max_concurrent, bulkhead.max_queued, bulkhead.max_wait) == (10, 0, 1.0)
    assert repr(bulkhead) == "Bulkhead(name='default', max_concurrent=10, max_queued=0, max_wait=1.0)"


# -- threads ------------------------------------------------------------------------------------------


def test_exactly_max_concurrent_threads_run_at_once(observed: Observed) -> None:
    bulkhead = make(observed, 3, max_queued=12, max_wait=BOUND)
    barrier = threading.Barrier(3, timeout=BOUND)  # breaks unless three calls are inside together
    lock = threading.Lock()
    inside, peak, errors = [0], [0], []

    def work() -> None:
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        barrier.wait()
        with lock:
            inside[0] -= 1

    def run() -> None:
        try:
            bulkhead.call(work)
        except Exception as exc:
            errors.append(exc)

    join(*[start(run) for _ in range(12)])
    assert errors == []
    assert peak[0] == 3
    assert bulkhead.snapshot().active == 0
    assert bulkhead.telemetry.counts()["admitted"] == 12


def test_queue_up_to_max_queued_then_reject_and_serve_in_order(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=2, max_wait=BOUND)
    bulkhead.acquire()
    order: list[str] = []

    def queued(label: str) -> Callable[[], None]:
        return lambda: bulkhead.call(order.append, label)

    first = start(queued("first"))
    wait_until(lambda: bulkhead.snapshot().queued == 1)
    second = start(queued("second"))
    wait_until(lambda: bulkhead.snapshot().queued == 2)

    with pytest.raises(BulkheadFull) as caught:
        bulkhead.acquire()
    message = str(caught.value)
    assert "'db'" in message
    assert "max_concurrent=1" in message
    assert "max_queued=2" in message
    assert caught.value.context["reason"] == "full"
    assert caught.value.status == 503

    bulkhead.release()
    join(first, second)
    assert order == ["first", "second"]
    assert bulkhead.snapshot() == BulkheadSnapshot("db", 1, 2, active=0, queued=0, rejected=1)
    assert bulkhead.telemetry.counts() == {"admitted": 3, "rejected": 1, "queued": 2}


def test_waiters_are_served_first_in_first_out(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=6, max_wait=BOUND)
    bulkhead.acquire()
    order: list[int] = []
    threads = []
    for number in range(6):
        threads.append(start(lambda number=number: bulkhead.call(order.append, number)))
        wait_until(lambda number=number: bulkhead.snapshot().queued == number + 1)
    bulkhead.release()
    join(*threads)
    assert order == list(range(6))


def test_newcomers_queue_behind_waiters(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=3, max_wait=BOUND)
    bulkhead.acquire()
    order: list[str] = []
    waiter = start(lambda: bulkhead.call(order.append, "waiter"))
    wait_until(lambda: bulkhead.snapshot().queued == 1)
    # The first half of a release (the slot goes back) without the second (the hand-off to the waiter),
    # as when a newcomer comes in between: the newcomer must hand the slot to the waiter and queue.
    bulkhead._free.append(True)
    newcomer = start(lambda: bulkhead.call(order.append, "newcomer"))
    join(waiter, newcomer)
    assert order == ["waiter", "newcomer"]
    assert bulkhead.snapshot().active == 0


def test_newcomer_takes_a_slot_left_over_after_the_waiters_are_served(observed: Observed) -> None:
    bulkhead = make(observed, 2, max_queued=1, max_wait=BOUND)
    bulkhead.acquire()
    bulkhead.acquire()
    order: list[str] = []
    waiter = start(lambda: bulkhead.call(order.append, "waiter"))
    wait_until(lambda: bulkhead.snapshot().queued == 1)
    bulkhead._free.extend([True, True])  # two releases, both before their hand-off (see above)
    bulkhead.call(order.append, "newcomer")  # sees a waiter, serves it, then takes the other slot
    join(waiter)
    assert sorted(order) == ["newcomer", "waiter"]
    assert bulkhead.snapshot().active == 0


async def test_async_newcomer_serves_waiters_first(observed: Observed) -> None:
    bulkhead = make(observed, 2, max_queued=1, max_wait=BOUND)
    await bulkhead.aacquire()
    await bulkhead.aacquire()
    waiter = asyncio.create_task(bulkhead.aacquire())
    await await_until(lambda: bulkhead.snapshot().queued == 1)
    bulkhead._free.extend([True, True])  # two releases, both before their hand-off (see above)
    await bulkhead.aacquire()
    await waiter
    assert bulkhead.snapshot().active == 2
    bulkhead.release()
    await bulkhead.arelease()
    assert bulkhead.snapshot().active == 0


def test_wait_expires_with_bulkhead_full(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=1, max_wait=0.05)
    bulkhead.acquire()
    started = time.monotonic()
    with pytest.raises(BulkheadFull, match=r"no free slot within 0\.05 s") as caught:
        bulkhead.acquire()
    elapsed = time.monotonic() - started
    assert 0.045 <= elapsed < 1.0
    assert caught.value.context["reason"] == "expired"
    assert bulkhead.snapshot().queued == 0
    started = time.monotonic()
    with pytest.raises(BulkheadFull, match=r"within 0\.01 s"):
        bulkhead.acquire(timeout=0.01)  # a per-call timeout overrides max_wait
    assert time.monotonic() - started < 0.5
    bulkhead.release()
    bulkhead.acquire(timeout=0)  # a free slot needs no waiting
    bulkhead.release()
    assert bulkhead.snapshot().active == 0
    [wait] = observed.metric(WAIT_METRIC)
    assert wait["labels"] == {"strategy": "bulkhead", "key": "db"}
    assert wait["count"] == 2


def test_zero_wait_rejects_even_with_queue_room(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=5, max_wait=0)
    with bulkhead:
        with pytest.raises(BulkheadFull):
            bulkhead.acquire()
        assert bulkhead.snapshot().queued == 0
    assert bulkhead.snapshot().active == 0


def test_slot_is_released_when_the_call_raises(observed: Observed) -> None:
    bulkhead = make(observed, 1)

    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        bulkhead.call(boom)
    with pytest.raises(KeyError), bulkhead:
        boom()
    assert bulkhead.snapshot().active == 0
    assert bulkhead.call(lambda: 7) == 7


def test_release_without_acquire_is_an_error(observed: Observed) -> None:
    bulkhead = make(observed, 2)
    with pytest.raises(RuntimeError, match="release\\(\\) without a matching acquire"):
        bulkhead.release()
    bulkhead.acquire()
    bulkhead.release()
    with pytest.raises(RuntimeError):
        bulkhead.release()
    assert bulkhead.snapshot().active == 0


@pytest.fixture
def usr1() -> Iterator[list[Callable[[], None]]]:
    """Run the callbacks in the list from a SIGUSR1 handler, then raise KeyboardInterrupt there."""
    actions: list[Callable[[], None]] = []

    def handler(signum: int, frame: object) -> None:
        for action in actions:
            action()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, handler)
    yield actions
    signal.signal(signal.SIGUSR1, previous)


def interrupt_when(condition: Callable[[], bool]) -> threading.Thread:
    main = threading.main_thread().ident
    assert main == threading.get_ident(), "signals are delivered to the main thread"

    def send() -> None:
        wait_until(condition)
        signal.pthread_kill(main, signal.SIGUSR1)

    return start(send)


def test_interrupted_waiter_leaves_the_queue(observed: Observed, usr1: list[Callable[[], None]]) -> None:
    bulkhead = make(observed, 1, max_queued=1, max_wait=BOUND)
    bulkhead.acquire()
    sender = interrupt_when(lambda: bulkhead.snapshot().queued == 1)
    with pytest.raises(KeyboardInterrupt):
        bulkhead.acquire()
    join(sender)
    assert bulkhead.snapshot().queued == 0
    bulkhead.release()
    assert bulkhead.snapshot().active == 0


def test_waiter_interrupted_after_its_grant_passes_the_slot_on(
    observed: Observed, usr1: list[Callable[[], None]]
) -> None:
    bulkhead = make(observed, 1, max_queued=1, max_wait=BOUND)
    bulkhead.acquire()
    usr1.append(bulkhead.release)  # the slot is handed to the queued main thread, then it is interrupted
    sender = interrupt_when(lambda: bulkhead.snapshot().queued == 1)
    with pytest.raises(KeyboardInterrupt):
        bulkhead.acquire()
    join(sender)
    assert bulkhead.snapshot().active == 0
    assert bulkhead.snapshot().queued == 0


# -- asyncio ------------------------------------------------------------------------------------------


async def test_exactly_max_concurrent_tasks_run_at_once(observed: Observed) -> None:
    bulkhead = make(observed, 2, max_queued=4, max_wait=BOUND)
    gate = asyncio.Event()
    inside, peak = [0], [0]

    async def work() -> int:
        inside[0] += 1
        peak[0] = max(peak[0], inside[0])
        await gate.wait()
        inside[0] -= 1
        return 1

    tasks = [asyncio.create_task(bulkhead.acall(work)) for _ in range(6)]
    await await_until(lambda: bulkhead.snapshot().queued == 4)
    assert bulkhead.snapshot().active == 2
    with pytest.raises(BulkheadFull, match="is full"):
        await bulkhead.acall(work)
    gate.set()
    assert await asyncio.gather(*tasks) == [1] * 6
    assert peak[0] == 2
    assert bulkhead.snapshot().active == 0


async def test_async_waiters_are_fifo_and_expire(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=3, max_wait=BOUND)
    await bulkhead.aacquire()
    order: list[int] = []

    async def note(number: int) -> None:
        order.append(number)

    tasks = []
    for number in range(3):
        tasks.append(asyncio.create_task(bulkhead.acall(note, number)))
        await await_until(lambda number=number: bulkhead.snapshot().queued == number + 1)
    await bulkhead.arelease()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]

    async with bulkhead:
        started = time.monotonic()
        with pytest.raises(BulkheadFull, match=r"within 0\.05 s"):
            await bulkhead.aacquire(timeout=0.05)
        assert time.monotonic() - started < 1.0
        assert bulkhead.snapshot().queued == 0
    assert bulkhead.snapshot().active == 0


async def test_cancelled_async_waiter_leaves_the_queue_without_leaking_a_slot(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=2, max_wait=BOUND)
    await bulkhead.aacquire()
    waiter = asyncio.create_task(bulkhead.aacquire())
    await await_until(lambda: bulkhead.snapshot().queued == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bulkhead.snapshot().queued == 0
    bulkhead.release()
    assert bulkhead.snapshot().active == 0
    await bulkhead.aacquire(timeout=0)  # the one slot is still there ...
    with pytest.raises(BulkheadFull):
        await bulkhead.aacquire(timeout=0)  # ... and only one
    bulkhead.release()


async def test_waiter_cancelled_after_its_grant_passes_the_slot_on(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=2, max_wait=BOUND)
    await bulkhead.aacquire()
    waiter = asyncio.create_task(bulkhead.aacquire())
    await await_until(lambda: bulkhead.snapshot().queued == 1)
    bulkhead.release()  # grants the slot to the waiter; its wake-up is scheduled, not yet run
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bulkhead.snapshot() == BulkheadSnapshot("db", 1, 2, active=0, queued=0, rejected=0)


async def test_grant_racing_the_wait_expiry_is_kept(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=1, max_wait=BOUND)
    await bulkhead.aacquire()
    # The release runs in the same loop iteration as the (already due) expiry, just before it.
    asyncio.get_running_loop().call_soon(bulkhead.release)
    await bulkhead.aacquire(timeout=1e-9)
    assert bulkhead.snapshot().active == 1
    bulkhead.release()
    assert bulkhead.telemetry.counts()["rejected"] == 0


async def test_threads_and_tasks_share_one_fifo_queue(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=4, max_wait=BOUND)
    holder_release = threading.Event()
    holder_in = threading.Event()

    def hold() -> None:
        with bulkhead:
            holder_in.set()
            holder_release.wait(BOUND)

    holder = start(hold)
    await asyncio.to_thread(holder_in.wait, BOUND)
    order: list[str] = []

    async def note_async(label: str) -> None:
        order.append(label)

    tasks, threads = [], []
    for index, label in enumerate(["task-1", "thread-1", "task-2", "thread-2"]):
        if label.startswith("task"):
            tasks.append(asyncio.create_task(bulkhead.acall(note_async, label)))
        else:
            threads.append(start(lambda label=label: bulkhead.call(order.append, label)))
        await await_until(lambda index=index: bulkhead.snapshot().queued == index + 1)
    holder_release.set()  # a thread releases: the task waiting first is woken across threads
    await asyncio.gather(*tasks)
    await asyncio.to_thread(join, holder, *threads)
    assert order == ["task-1", "thread-1", "task-2", "thread-2"]
    assert bulkhead.snapshot().active == 0


def test_slot_granted_to_a_task_on_a_closed_loop_goes_back(observed: Observed) -> None:
    bulkhead = make(observed, 1, max_queued=1)
    bulkhead.acquire()
    loop = asyncio.new_event_loop()
    orphan = _AsyncWaiter(loop)
    loop.close()
    # A task queued on a loop that was closed before the slot reached it (a thread's loop shut down).
    bulkhead._waiters.append(orphan)
    bulkhead.release()
    assert orphan.granted
    assert bulkhead.snapshot().active == 0
    assert bulkhead.call(lambda: "free") == "free"


# -- decorator and observability ----------------------------------------------------------------------


async def test_decorator_keeps_signatures_for_functions_and_methods(observed: Observed) -> None:
    bulkhead = make(observed, 1)

    @bulkhead
    def add(a: int, b: int = 2) -> int:
        """Add."""
        return a + b

    @bulkhead
    async def aadd(a: int, *, b: int) -> int:
        return a + b

    class Service:
        @bulkhead
        def get(self, key: str) -> str:
            return key.upper()

        @bulkhead
        async def aget(self, key: str) -> str:
            return key * 2

    assert add(1) == 3
    assert await aadd(1, b=5) == 6
    assert Service().get("a") == "A"
    assert await Service().aget("b") == "bb"
    assert inspect.signature(add) == inspect.signature(add.__wrapped__)  # type: ignore[attr-defined]
    assert list(inspect.signature(aadd).parameters) == ["a", "b"]
    assert add.__name__ == "add"
    assert add.__doc__ == "Add."
    assert inspect.iscoroutinefunction(aadd)
    assert bulkhead.telemetry.counts()["admitted"] == 4
    with pytest.raises(ValidationError, match="needs a function") as caught:
        bulkhead(42)  # type: ignore[arg-type]
    assert caught.value.field == "fn"


def test_rejections_are_published_and_load_is_exported(observed: Observed) -> None:
    bulkhead = make(observed, 2, max_queued=0)
    bulkhead.acquire()
    bulkhead.acquire()
    with pytest.raises(BulkheadFull):
        bulkhead.call(lambda: None)
    assert observed.metric(ACTIVE_METRIC) == [{"labels": {"key": "db"}, "value": 2.0}]
    assert observed.metric(QUEUED_METRIC) == [{"labels": {"key": "db"}, "value": 0.0}]
    calls = {s["labels"]["outcome"]: s["value"] for s in observed.metric("buttress_resilience_calls_total")}
    assert calls == {"admitted": 2.0, "rejected": 1.0}
    assert observed.events() == [
        (
            "resilience.bulkhead.rejected",
            {
                "key": "db",
                "name": "db",
                "reason": "full",
                "max_concurrent": 2,
                "max_queued": 0,
                "active": 2,
                "queued": 0,
            },
        )
    ]
    snapshot = bulkhead.snapshot()
    assert snapshot.to_dict() == {
        "name": "db",
        "max_concurrent": 2,
        "max_queued": 0,
        "active": 2,
        "queued": 0,
        "rejected": 1,
    }


def test_queued_waits_are_measured_with_the_injected_clock(observed: Observed) -> None:
    clock = FakeClock()
    bulkhead = Bulkhead(1, max_queued=1, max_wait=0.01, clock=clock, metrics=observed.registry)
    bulkhead.acquire()
    with pytest.raises(BulkheadFull):
        bulkhead.acquire()
    [wait] = observed.metric(WAIT_METRIC)
    assert wait["sum"] == 0.0  # the fake clock did not move while the caller waited for real
