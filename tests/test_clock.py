"""The injectable clocks: the system clock is real, the fake one moves only when told."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from buttress.clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock


def test_system_clock_reads_the_real_clocks() -> None:
    before_mono, before_wall = time.monotonic(), time.time()
    assert SYSTEM_CLOCK.monotonic() >= before_mono
    assert SYSTEM_CLOCK.time() >= before_wall
    assert isinstance(SYSTEM_CLOCK, Clock)
    assert repr(SYSTEM_CLOCK) == "SystemClock()"


def test_system_clock_sleeps_of_zero_or_less_return_at_once() -> None:
    clock = SystemClock()
    start = time.monotonic()
    clock.sleep(0)
    clock.sleep(-5)
    asyncio.run(clock.asleep(-1))
    assert time.monotonic() - start < 1.0


def test_system_clock_sleep_waits_at_least_the_duration() -> None:
    start = time.monotonic()
    SYSTEM_CLOCK.sleep(0.01)
    asyncio.run(SYSTEM_CLOCK.asleep(0.01))
    assert time.monotonic() - start >= 0.02


def test_fake_clock_is_a_clock_and_starts_where_told() -> None:
    clock = FakeClock(start_monotonic=5.0, start_time=100.0)
    assert isinstance(clock, Clock)
    assert (clock.monotonic(), clock.time()) == (5.0, 100.0)


def test_advance_moves_both_clocks_together() -> None:
    clock = FakeClock()
    mono, wall = clock.monotonic(), clock.time()
    clock.advance(2.5)
    assert clock.monotonic() == mono + 2.5
    assert clock.time() == wall + 2.5


def test_advance_refuses_to_go_back_in_time() -> None:
    with pytest.raises(ValueError, match=r"needs seconds >= 0, got -1; time never goes back"):
        FakeClock().advance(-1)


def test_auto_advance_sleeps_return_at_once_and_are_recorded() -> None:
    clock = FakeClock()
    start = clock.monotonic()
    clock.sleep(300)
    asyncio.run(clock.asleep(60))
    clock.sleep(-1)
    assert clock.sleeps == [300, 60, 0.0]
    assert clock.monotonic() == start + 360


def test_manual_sleeper_thread_wakes_only_when_time_passes_its_deadline() -> None:
    clock = FakeClock(auto_advance=False)
    woke = threading.Event()

    def sleeper() -> None:
        clock.sleep(10)
        woke.set()

    thread = threading.Thread(target=sleeper)
    thread.start()
    clock.wait_for_sleepers(1)
    clock.advance(9.999)
    assert not woke.wait(0.05)
    assert clock.sleepers == 1
    clock.advance(0.001)
    assert woke.wait(5)
    thread.join(5)
    assert clock.sleepers == 0


async def test_manual_async_sleepers_wake_in_deadline_order() -> None:
    clock = FakeClock(auto_advance=False)
    order: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.asleep(seconds)
        order.append(name)

    tasks = [asyncio.create_task(sleeper("late", 5)), asyncio.create_task(sleeper("early", 1))]
    while clock.sleepers < 2:
        await asyncio.sleep(0)
    clock.advance(1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order == ["early"]
    clock.advance(4)
    await asyncio.gather(*tasks)
    assert order == ["early", "late"]


async def test_manual_async_sleep_of_zero_returns_without_advance() -> None:
    clock = FakeClock(auto_advance=False)
    await asyncio.wait_for(clock.asleep(0), timeout=5)
    assert clock.sleepers == 0


async def test_cancelled_async_sleeper_is_forgotten() -> None:
    clock = FakeClock(auto_advance=False)
    task = asyncio.create_task(clock.asleep(10))
    while clock.sleepers < 1:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0


async def test_async_sleeper_is_woken_by_a_thread_advancing_the_clock() -> None:
    clock = FakeClock(auto_advance=False)
    task = asyncio.create_task(clock.asleep(3))
    while clock.sleepers < 1:
        await asyncio.sleep(0)
    thread = threading.Thread(target=clock.advance, args=(3,))
    thread.start()
    await asyncio.wait_for(task, timeout=5)
    thread.join(5)


def test_wait_for_sleepers_times_out_with_a_clear_message() -> None:
    with pytest.raises(TimeoutError, match=r"expected 1 sleepers on the FakeClock within 0.01s, saw 0"):
        FakeClock(auto_advance=False).wait_for_sleepers(1, timeout=0.01)
