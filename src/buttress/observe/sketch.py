"""A mergeable relative-error quantile sketch and a sliding window of them.

Why a sketch: a histogram's fixed buckets answer "how many requests took under 250 ms" but not "what is the
p99 right now"; keeping every sample answers it at a cost that grows with traffic. The DDSketch idea
(Masson, Rim, Lee, VLDB 2019) answers quantiles with a bounded *relative* error in memory that grows with
the log of the value range, and two sketches merge by adding counts, so a sliding window is a ring of
small sketches merged on read.

How it works here: a positive value ``x`` goes to the bucket ``k = ceil(log(x) / log(gamma))`` with
``gamma = (1 + a) / (1 - a)``, so bucket ``k`` holds ``(gamma**(k-1), gamma**k]``. Reporting a bucket as
``2 * gamma**k / (gamma + 1)`` is within ``a * x`` of every ``x`` in it. Negative values use a mirrored
store, exact zeros (and magnitudes too small to index, below ~2.2e-308) a counter. ``a`` is the
``relative_accuracy``; the buckets are built for ``a * (1 - 1e-6)`` so floating-point rounding at a bucket
edge cannot push the error past ``a``.

The quantile definition: for ``n`` values and ``q`` in [0, 1], the sketch estimates the value of rank
``floor(q * (n - 1))`` (0-based) in sorted order, so ``q=0`` is the minimum, ``q=1`` the maximum and
``q=0.5`` of ``[1, 2, 3, 4]`` is 2. The estimate ``e`` of the exact value ``v`` satisfies
``|e - v| <= a * |v|``; ranks 0 and ``n - 1`` give the exact min and max, which also clamp the rest.

Memory is bounded by ``max_bins`` per sign: when a store would exceed it, its lowest buckets are merged
into one. Only the lowest quantiles lose accuracy then; with the default 2048 bins and ``a = 0.01`` that
needs values spanning more than 17 orders of magnitude, so it does not happen to latencies.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypedDict

from buttress.errors import ValidationError

__all__ = ["DEFAULT_QUANTILES", "QuantileSketch", "SlidingWindowSketch", "WindowStats"]

DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
_ALPHA_MARGIN = 1e-6
_NO_FLOOR = -(2**62)

_log = math.log
_ceil = math.ceil


class WindowStats(TypedDict):
    """Summary of the values seen in a sliding window; quantiles and extremes are None when it is empty."""

    window_seconds: float
    count: int
    sum: float
    mean: float | None
    min: float | None
    max: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class _Bins(dict[int, int]):
    """Bucket key -> count; ``floor`` is the lowest key still kept apart after a collapse."""

    __slots__ = ("floor",)

    def __init__(self) -> None:
        super().__init__()
        self.floor = _NO_FLOOR


def _bad_value(value: float) -> ValidationError:
    return ValidationError(
        f"cannot record {value!r}: a sketch takes finite numbers; check the measurement for NaN or infinity",
        field="value",
    )


class QuantileSketch:
    """Quantiles with at most ``relative_accuracy`` relative error; not thread-safe on its own.

    :class:`SlidingWindowSketch` adds the locking and the window; use this class directly to summarise a
    batch, or to merge summaries that came from elsewhere.
    """

    __slots__ = (
        "_gamma_ln",
        "_multiplier",
        "_rep_factor",
        "count",
        "max",
        "max_bins",
        "min",
        "min_indexable",
        "negative",
        "positive",
        "relative_accuracy",
        "sum",
        "zero_count",
    )

    def __init__(self, relative_accuracy: float = 0.01, *, max_bins: int = 2048) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValidationError(
                f"relative_accuracy must be between 0 and 1 (exclusive), got {relative_accuracy!r}; "
                "0.01 means quantiles within 1%",
                field="relative_accuracy",
            )
        if max_bins < 16:
            raise ValidationError(
                f"max_bins must be at least 16, got {max_bins!r}; the default 2048 covers 17 decades at 1%",
                field="max_bins",
            )
        self.relative_accuracy = relative_accuracy
        self.max_bins = max_bins
        alpha = relative_accuracy * (1.0 - _ALPHA_MARGIN)
        gamma = (1.0 + alpha) / (1.0 - alpha)
        self._gamma_ln = math.log(gamma)
        self._multiplier = 1.0 / self._gamma_ln
        self._rep_factor = 1.0 + alpha  # 2 * gamma / (gamma + 1)
        self.min_indexable = sys.float_info.min * gamma
        self.positive = _Bins()
        self.negative = _Bins()
        self.zero_count = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def __repr__(self) -> str:
        return (
            f"QuantileSketch(relative_accuracy={self.relative_accuracy!r}, count={self.count}, "
            f"bins={len(self.positive) + len(self.negative)})"
        )

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def add(self, value: float) -> None:
        """Record one value: a log, a dict increment and a few comparisons."""
        if value > self.min_indexable:
            try:
                key = _ceil(_log(value) * self._multiplier)
            except OverflowError:  # +inf
                raise _bad_value(value) from None
            # inlined in SlidingWindowSketch.add too: a method call is a large part of this cost
            bins = self.positive
            seen = bins.get(key)
            if seen is None:
                _insert(bins, key, self.max_bins)
            else:
                bins[key] = seen + 1
            self.count += 1
            self.sum += value
            if value < self.min:  # noqa: PLR1730  # a compare is cheaper than a call to min() on the hot path
                self.min = value
            if value > self.max:  # noqa: PLR1730
                self.max = value
        else:
            self._add_slow(value)

    def _add_slow(self, value: float) -> None:
        """Zero, negative, tiny or invalid values: rarer, so kept off the fast path."""
        if -self.min_indexable <= value <= self.min_indexable:
            self.zero_count += 1
        elif value < 0.0:
            try:
                key = _ceil(_log(-value) * self._multiplier)
            except OverflowError:  # -inf
                raise _bad_value(value) from None
            bins = self.negative
            seen = bins.get(key)
            if seen is None:
                _insert(bins, key, self.max_bins)
            else:
                bins[key] = seen + 1
        else:  # NaN compares false with everything
            raise _bad_value(value)
        self.count += 1
        self.sum += value
        if value < self.min:  # noqa: PLR1730  # a compare is cheaper than a call to min() on the hot path
            self.min = value
        if value > self.max:  # noqa: PLR1730
            self.max = value

    def merge(self, other: QuantileSketch) -> None:
        """Add ``other``'s values to this sketch; the result equals a sketch of both inputs."""
        if other._multiplier != self._multiplier:
            raise ValidationError(
                f"cannot merge sketches of different accuracy ({self.relative_accuracy!r} and "
                f"{other.relative_accuracy!r}); build both with the same relative_accuracy",
                field="other",
            )
        _merge_bins(self.positive, other.positive, self.max_bins)
        _merge_bins(self.negative, other.negative, self.max_bins)
        self.zero_count += other.zero_count
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self) -> QuantileSketch:
        """An independent copy; C-level dict copies, so it is cheap enough to take under a lock."""
        clone = QuantileSketch(self.relative_accuracy, max_bins=self.max_bins)
        clone.positive.update(self.positive)
        clone.positive.floor = self.positive.floor
        clone.negative.update(self.negative)
        clone.negative.floor = self.negative.floor
        clone.zero_count = self.zero_count
        clone.count = self.count
        clone.sum = self.sum
        clone.min = self.min
        clone.max = self.max
        return clone

    def quantile(self, q: float) -> float | None:
        """The value of rank ``floor(q * (n - 1))`` within the relative accuracy; None when empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Several quantiles in one pass over the sorted buckets."""
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValidationError(f"quantile must be within [0, 1], got {q!r}; p99 is 0.99", field="q")
        n = self.count
        if n == 0:
            return [None] * len(qs)
        wanted = sorted((math.floor(q * (n - 1)), i) for i, q in enumerate(qs))
        results: list[float | None] = [None] * len(qs)
        pending = iter(wanted)
        rank, index = next(pending)
        seen = 0
        for bucket_count, value in self._ascending():
            seen += bucket_count
            while seen > rank:
                if rank == 0:
                    results[index] = self.min  # the extremes are known exactly
                elif rank == n - 1:
                    results[index] = self.max
                else:
                    results[index] = min(max(value, self.min), self.max)
                nxt = next(pending, None)
                if nxt is None:
                    return results
                rank, index = nxt
        raise AssertionError("bucket counts do not add up to count")  # pragma: no cover

    def _ascending(self) -> Iterator[tuple[int, float]]:
        """(count, representative value) of every bucket, smallest value first."""
        negative = self.negative
        for key in sorted(negative, reverse=True):
            yield negative[key], -self._representative(key)
        if self.zero_count:
            yield self.zero_count, 0.0
        positive = self.positive
        for key in sorted(positive):
            yield positive[key], self._representative(key)

    def _representative(self, key: int) -> float:
        # gamma**(key-1) never overflows for a key that a finite value produced; the product may round
        # to inf at the very top of the float range, and the caller clamps it to the exact max.
        return math.exp((key - 1) * self._gamma_ln) * self._rep_factor


def _insert(bins: _Bins, key: int, max_bins: int) -> None:
    floor = bins.floor
    if key <= floor:
        bins[floor] = bins.get(floor, 0) + 1
        return
    bins[key] = 1
    if len(bins) > max_bins:
        _collapse(bins, max_bins)


def _collapse(bins: _Bins, max_bins: int) -> None:
    """Fold the lowest buckets into one so at most ``max_bins`` remain."""
    keys = sorted(bins)
    excess = len(keys) - max_bins
    target = keys[excess]
    moved = 0
    for key in keys[:excess]:
        moved += bins.pop(key)
    bins[target] += moved
    bins.floor = target


def _merge_bins(into: _Bins, other: _Bins, max_bins: int) -> None:
    if other.floor > into.floor:
        into.floor = other.floor
        below = [key for key in into if key < other.floor]
        if below:
            into[other.floor] = into.get(other.floor, 0) + sum(into.pop(key) for key in below)
    floor = into.floor
    for key, count in other.items():
        target = floor if key < floor else key
        into[target] = into.get(target, 0) + count
    if len(into) > max_bins:
        _collapse(into, max_bins)


class SlidingWindowSketch:
    """Quantiles over the last ``window_seconds``, thread-safe, on an injected monotonic clock.

    A ring of ``slices`` sketches each covers ``window_seconds / slices`` of clock time; the current one
    takes new values and a read merges the ones still inside the window. A read therefore sees between
    ``window_seconds * (1 - 1/slices)`` and ``window_seconds`` of history (4.5 to 5 minutes by default).
    The lock covers only the bucket increment; the logarithm and the clock read happen outside it.
    """

    __slots__ = (
        "_current",
        "_lock",
        "_max_bins",
        "_min_indexable",
        "_monotonic",
        "_multiplier",
        "_per_second",
        "_ring",
        "_slot",
        "_slots",
        "relative_accuracy",
        "slices",
        "window_seconds",
    )

    def __init__(
        self,
        monotonic: Callable[[], float],
        *,
        window_seconds: float = 300.0,
        slices: int = 10,
        relative_accuracy: float = 0.01,
        max_bins: int = 2048,
    ) -> None:
        if not (window_seconds > 0 and math.isfinite(window_seconds)):
            raise ValidationError(
                f"window_seconds must be a positive number of seconds, got {window_seconds!r}; e.g. 300",
                field="window_seconds",
            )
        if slices < 1:
            raise ValidationError(f"slices must be at least 1, got {slices!r}; e.g. 10", field="slices")
        self.window_seconds = float(window_seconds)
        self.slices = slices
        self.relative_accuracy = relative_accuracy
        self._max_bins = max_bins
        self._monotonic = monotonic
        self._per_second = slices / self.window_seconds
        empty = QuantileSketch(relative_accuracy, max_bins=max_bins)
        self._multiplier = empty._multiplier
        self._min_indexable = empty.min_indexable
        self._ring: list[QuantileSketch | None] = [None] * slices
        self._slots: list[float] = [-math.inf] * slices
        self._slot = -math.inf
        self._current = empty
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        """Record one value into the current slice."""
        if value > self._min_indexable:
            try:
                key = _ceil(_log(value) * self._multiplier)
            except OverflowError:
                raise _bad_value(value) from None
            slot = self._monotonic() * self._per_second // 1.0  # a float floor: no int() call
            lock = self._lock
            lock.acquire()  # explicit acquire/release costs half of a with-statement here
            try:
                # A thread that read the clock just before a rotation lands in the newer slice.
                sketch = self._current if slot <= self._slot else self._rotate(slot)
                bins = sketch.positive  # QuantileSketch.add, inlined
                seen = bins.get(key)
                if seen is None:
                    _insert(bins, key, self._max_bins)
                else:
                    bins[key] = seen + 1
                sketch.count += 1
                sketch.sum += value
                if value < sketch.min:  # noqa: PLR1730
                    sketch.min = value
                if value > sketch.max:  # noqa: PLR1730
                    sketch.max = value
            finally:
                lock.release()
        else:
            if not value > -math.inf:  # NaN and -inf: refuse before taking the lock
                raise _bad_value(value)
            slot = self._monotonic() * self._per_second // 1.0
            with self._lock:
                sketch = self._current if slot <= self._slot else self._rotate(slot)
                sketch._add_slow(value)

    def _rotate(self, slot: float) -> QuantileSketch:
        sketch = QuantileSketch(self.relative_accuracy, max_bins=self._max_bins)
        index = int(slot) % self.slices
        self._ring[index] = sketch
        self._slots[index] = slot
        self._slot = slot
        self._current = sketch
        return sketch

    def merged(self) -> QuantileSketch:
        """One sketch of every value still inside the window."""
        now_slot = self._monotonic() * self._per_second // 1.0
        oldest = now_slot - self.slices + 1
        live: list[QuantileSketch] = []
        with self._lock:
            for index, sketch in enumerate(self._ring):
                if sketch is None:
                    continue
                if self._slots[index] < oldest:
                    self._ring[index] = None  # expired: let it go now rather than at the next rotation
                elif sketch is self._current:
                    live.append(sketch.copy())  # the only sketch still written to
                else:
                    live.append(sketch)
        result = QuantileSketch(self.relative_accuracy, max_bins=self._max_bins)
        for sketch in live:
            result.merge(sketch)
        return result

    def stats(self) -> WindowStats:
        """Count, sum, mean, min, max and p50/p95/p99 of the window, ready for JSON."""
        sketch = self.merged()
        p50, p95, p99 = sketch.quantiles(DEFAULT_QUANTILES)
        empty = sketch.count == 0
        return WindowStats(
            window_seconds=self.window_seconds,
            count=sketch.count,
            sum=sketch.sum,
            mean=sketch.mean,
            min=None if empty else sketch.min,
            max=None if empty else sketch.max,
            p50=p50,
            p95=p95,
            p99=p99,
        )
