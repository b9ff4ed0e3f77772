"""Tiny timing harness: every table compares buttress with its anchors, measured in the same run."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ["Row", "Table", "aloop", "ameasure_ns", "fmt", "interleave", "loop", "measure_ns", "rotations"]


def measure_ns(fn: Callable[[], object], *, repeat: int = 7, min_time: float = 0.05) -> float:
    """Nanoseconds per call: calibrate a loop to ``min_time`` seconds, run it ``repeat`` times, median.

    The median of several loops is robust to the noise of a shared 2-core machine; GC is paused during a
    loop so one collection does not land on a single candidate.
    """
    number = 1
    while True:
        elapsed = loop(fn, number)
        if elapsed >= min_time:
            break
        number *= 2 if elapsed <= 0 else max(2, min(10, int(min_time / elapsed) + 1))
    samples = [loop(fn, number) / number for _ in range(repeat)]
    return statistics.median(samples) * 1e9


def loop(fn: Callable[[], object], number: int) -> float:
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


async def aloop(fn: Callable[[], Awaitable[object]], number: int) -> float:
    """Seconds for ``number`` awaits of ``fn()`` in the running loop, GC paused (:func:`loop` for awaits)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            await fn()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


async def ameasure_ns(
    fn: Callable[[], Awaitable[object]], *, repeat: int = 7, min_time: float = 0.05
) -> float:
    """Nanoseconds per ``await fn()``, as :func:`measure_ns` does for calls, in the running event loop.

    One timed await (a warm-up too) sets how many awaits fill ``min_time``; then ``repeat`` loops of
    that many, GC paused, and their median. The loop, and every connection pooled in it, stays.
    """
    once = await aloop(fn, 1)
    number = max(1, math.ceil(min_time / once)) if once > 0 else 1_000
    samples = [await aloop(fn, number) / number for _ in range(repeat)]
    return statistics.median(samples) * 1e9


def rotations(names: Sequence[str], rounds: int) -> Iterator[str]:
    """The candidates, round after round, each round starting one further than the last.

    Other processes load this shared machine in bursts; rotating spreads a burst over every candidate of
    a row instead of landing on one, so the ratios hold even when the absolute times move.
    """
    for index in range(rounds):
        shift = index % len(names)
        yield from [*names[shift:], *names[:shift]]


def interleave(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Each measure taken once per round in :func:`rotations` order; the median per candidate."""
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for name in rotations(list(measures), rounds):
        samples[name].append(measures[name]())
    return {name: statistics.median(values) for name, values in samples.items()}


@dataclass
class Row:
    """One operation: buttress's cost and each anchor's, in nanoseconds per operation."""

    operation: str
    buttress_ns: float
    anchors_ns: dict[str, float] = field(default_factory=dict)


@dataclass
class Table:
    """One benchmark module's result; ``notes`` explain what exactly is compared."""

    title: str
    anchors: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        header = ["operation", "buttress"]
        for anchor in self.anchors:
            header += [anchor, f"buttress / {anchor}"]
        lines = [f"### {self.title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [row.operation, fmt(row.buttress_ns)]
            for anchor in self.anchors:
                theirs = row.anchors_ns.get(anchor)
                if theirs is None:
                    cells += ["n/a", "n/a"]
                else:
                    cells += [fmt(theirs), f"{row.buttress_ns / theirs:.2f}x"]
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"


def fmt(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"
