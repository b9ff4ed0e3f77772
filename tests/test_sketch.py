"""The quantile sketch and its sliding window: the error bound, merging, memory bound, expiry, threads."""

from __future__ import annotations

import math
import random
import sys
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.observe.sketch import QuantileSketch, SlidingWindowSketch

ALPHA = 0.01


def exact_quantile(ordered: list[float], q: float) -> float:
    """The documented definition: the value of rank floor(q * (n - 1)) in sorted order."""
    return ordered[math.floor(q * (len(ordered) - 1))]


def relative_error(estimate: float, exact: float) -> float:
    if exact == 0.0:
        return 0.0 if estimate == 0.0 else math.inf
    return abs(estimate - exact) / abs(exact)


def sketch_of(values: list[float], **kwargs: int) -> QuantileSketch:
    sketch = QuantileSketch(ALPHA, **kwargs)
    for value in values:
        sketch.add(value)
    return sketch


# Magnitudes the sketch indexes (below ~2.2e-308 counts as zero, documented), plus exact zeros.
indexable = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-300, max_value=sys.float_info.max),
    st.floats(min_value=-sys.float_info.max, max_value=-1e-300),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(indexable, min_size=1, max_size=200), qs=st.lists(st.floats(0.0, 1.0), min_size=1))
def test_quantiles_are_within_the_relative_accuracy(values: list[float], qs: list[float]) -> None:
    sketch = sketch_of(values)
    ordered = sorted(values)
    for q, estimate in zip(qs, sketch.quantiles(qs), strict=True):
        exact = exact_quantile(ordered, q)
        assert estimate is not None
        assert abs(estimate - exact) <= ALPHA * abs(exact), (q, estimate, exact)


@settings(max_examples=100, deadline=None)
@given(
    left=st.lists(st.floats(min_value=-1e9, max_value=1e9), max_size=100),
    right=st.lists(st.floats(min_value=-1e9, max_value=1e9), max_size=100),
)
def test_merge_equals_the_sketch_of_the_union(left: list[float], right: list[float]) -> None:
    merged = sketch_of(left)
    merged.merge(sketch_of(right))
    union = sketch_of(left + right)
    assert dict(merged.positive) == dict(union.positive)
    assert dict(merged.negative) == dict(union.negative)
    assert (merged.zero_count, merged.count) == (union.zero_count, union.count)
    assert (merged.min, merged.max) == (union.min, union.max)
    assert merged.sum == pytest.approx(union.sum, rel=1e-9, abs=1e-6)
    qs = [i / 20 for i in range(21)]
    assert merged.quantiles(qs) == union.quantiles(qs)


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "lognormal": lambda rng: rng.lognormvariate(-3.0, 1.5),
    "uniform": lambda rng: rng.uniform(0.001, 10.0),
    "exponential": lambda rng: rng.expovariate(20.0),
    "normal (mixed signs)": lambda rng: rng.gauss(0.0, 1.0),
}


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_large_samples_stay_within_one_percent(distribution: str) -> None:
    rng = random.Random(f"sketch-{distribution}")
    draw = DISTRIBUTIONS[distribution]
    values = [draw(rng) for _ in range(100_000)]
    sketch = sketch_of(values)
    ordered = sorted(values)
    qs = [i / 1000 for i in range(1001)]
    worst = max(
        relative_error(estimate, exact_quantile(ordered, q))
        for q, estimate in zip(qs, sketch.quantiles(qs), strict=True)
        if estimate is not None
    )
    assert worst <= ALPHA
    assert sketch.quantile(0.0) == ordered[0]  # clamped to the exact extremes
    assert sketch.quantile(1.0) == ordered[-1]
    assert sketch.count == len(values)
    assert sketch.mean == pytest.approx(sum(values) / len(values))
    assert len(sketch.positive) + len(sketch.negative) < 2048  # memory is logarithmic in the range


def test_quantile_definition_on_a_small_example() -> None:
    sketch = sketch_of([4.0, 1.0, 3.0, 2.0])
    p0, p50, p75, p100 = sketch.quantiles([0.0, 0.5, 0.75, 1.0])
    assert p0 == 1.0
    assert p50 == pytest.approx(2.0, rel=ALPHA)  # rank floor(0.5 * 3) = 1
    assert p75 == pytest.approx(3.0, rel=ALPHA)  # rank floor(0.75 * 3) = 2
    assert p100 == 4.0


def test_zeros_negatives_and_tiny_values() -> None:
    sketch = sketch_of([-5.0, 0.0, 1e-320, -1e-320, 7.0])
    assert sketch.zero_count == 3  # 0 and the subnormals below the indexable range
    assert sketch.count == 5
    assert sketch.quantile(0.0) == -5.0
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == 7.0
    assert sketch.min == -5.0
    assert sketch.max == 7.0


def test_the_extremes_of_the_float_range_are_clamped_to_the_observed_max() -> None:
    sketch = sketch_of([sys.float_info.max, -sys.float_info.max])
    assert sketch.quantile(1.0) == sys.float_info.max
    assert sketch.quantile(0.0) == -sys.float_info.max


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused_and_leave_no_trace(bad: float) -> None:
    sketch = sketch_of([1.0])
    with pytest.raises(ValidationError, match="finite numbers") as info:
        sketch.add(bad)
    assert info.value.field == "value"
    assert sketch.count == 1
    assert sketch.sum == 1.0


def test_empty_sketch() -> None:
    sketch = QuantileSketch()
    assert sketch.quantiles([0.5, 0.99]) == [None, None]
    assert sketch.quantile(0.5) is None
    assert sketch.mean is None
    assert "count=0" in repr(sketch)


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_quantile_out_of_range(q: float) -> None:
    with pytest.raises(ValidationError, match=r"quantile must be within \[0, 1\]") as info:
        sketch_of([1.0]).quantile(q)
    assert info.value.field == "q"


@pytest.mark.parametrize("accuracy", [0.0, 1.0, -0.5])
def test_relative_accuracy_is_validated(accuracy: float) -> None:
    with pytest.raises(ValidationError, match="relative_accuracy must be between 0 and 1") as info:
        QuantileSketch(accuracy)
    assert info.value.field == "relative_accuracy"


def test_max_bins_is_validated() -> None:
    with pytest.raises(ValidationError, match="max_bins must be at least 16"):
        QuantileSketch(max_bins=4)


def test_sketches_of_different_accuracy_do_not_merge() -> None:
    with pytest.raises(ValidationError, match="different accuracy"):
        QuantileSketch(0.01).merge(QuantileSketch(0.02))


def test_copy_is_independent() -> None:
    original = sketch_of([1.0, -2.0, 0.0])
    clone = original.copy()
    clone.add(100.0)
    clone.add(-100.0)
    assert original.count == 3
    assert original.max == 1.0
    assert clone.count == 5
    assert clone.quantiles([0.0, 1.0]) == [-100.0, 100.0]


class TestCollapse:
    """Memory stays bounded: past max_bins, the lowest buckets fold into one."""

    def test_bins_are_capped_and_upper_quantiles_stay_accurate(self) -> None:
        values = [10.0**exponent for exponent in range(-200, 201)]  # ~46,000 buckets' worth of range
        sketch = sketch_of(values, max_bins=16)
        assert len(sketch.positive) == 16
        assert sketch.count == len(values)
        ordered = sorted(values)
        for q in (0.97, 0.99, 1.0):
            estimate = sketch.quantile(q)
            assert estimate is not None
            assert relative_error(estimate, exact_quantile(ordered, q)) <= ALPHA
        # values below the collapsed floor land in the floor bucket instead of growing the store
        sketch.add(1e-250)
        assert len(sketch.positive) == 16
        assert sketch.count == len(values) + 1

    def test_negative_store_collapses_too(self) -> None:
        sketch = sketch_of([-(10.0**exponent) for exponent in range(40)], max_bins=16)
        assert len(sketch.negative) == 16
        assert sketch.quantile(0.0) == -1e39

    def test_merging_collapsed_sketches_keeps_the_cap_and_the_count(self) -> None:
        low = sketch_of([10.0**exponent for exponent in range(-30, 0)], max_bins=16)
        high = sketch_of([10.0**exponent for exponent in range(30)], max_bins=16)
        fresh = sketch_of([1e-40, 5.0], max_bins=16)
        fresh.merge(high)  # high's floor is above fresh's small value: it folds into the floor
        fresh.merge(low)
        assert len(fresh.positive) <= 16
        assert fresh.count == 62
        assert fresh.quantile(1.0) == 1e29
        assert fresh.min == 1e-40


class Clock:
    """A settable monotonic clock, so a test can make one reader lag behind another."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestSlidingWindow:
    def test_values_expire_after_the_window(self) -> None:
        clock = FakeClock()
        window = SlidingWindowSketch(clock.monotonic, window_seconds=300, slices=10)
        window.add(1.0)
        clock.advance(150)
        window.add(2.0)
        assert window.stats()["count"] == 2
        clock.advance(150)  # the first slice is now 300 s old: gone
        stats = window.stats()
        assert stats["count"] == 1
        assert stats["min"] == 2.0
        clock.advance(150)
        assert window.stats()["count"] == 0

    def test_a_read_sees_between_nine_and_ten_slices(self) -> None:
        clock = Clock(0.0)
        window = SlidingWindowSketch(clock, window_seconds=10, slices=10)
        window.add(5.0)  # slice [0, 1)
        clock.now = 9.99
        assert window.merged().count == 1
        clock.now = 10.0
        assert window.merged().count == 0

    def test_stats_are_json_ready(self) -> None:
        clock = FakeClock()
        window = SlidingWindowSketch(clock.monotonic)
        assert window.stats() == {
            "window_seconds": 300.0,
            "count": 0,
            "sum": 0.0,
            "mean": None,
            "min": None,
            "max": None,
            "p50": None,
            "p95": None,
            "p99": None,
        }
        for i in range(1, 101):
            window.add(i / 100)
            clock.advance(1)
        stats = window.stats()
        assert stats["count"] == 100
        assert stats["max"] == 1.0
        assert stats["p50"] == pytest.approx(0.5, rel=ALPHA)
        assert stats["p95"] == pytest.approx(0.95, rel=ALPHA)
        assert stats["p99"] == pytest.approx(0.99, rel=ALPHA)
        assert stats["mean"] == pytest.approx(0.505)

    def test_merged_window_matches_one_sketch_of_the_same_values(self) -> None:
        clock = FakeClock()
        window = SlidingWindowSketch(clock.monotonic, window_seconds=60, slices=6)
        rng = random.Random(7)
        values = [rng.lognormvariate(0, 1) for _ in range(5000)]
        for value in values:
            window.add(value)
            clock.advance(0.01)
        merged = window.merged()
        reference = sketch_of(values)
        assert dict(merged.positive) == dict(reference.positive)
        assert merged.count == reference.count

    def test_zero_negative_and_invalid_values(self) -> None:
        window = SlidingWindowSketch(FakeClock().monotonic)
        window.add(0.0)
        window.add(-2.0)
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(ValidationError, match="finite"):
                window.add(bad)
        stats = window.stats()
        assert stats["count"] == 2
        assert stats["min"] == -2.0

    def test_a_late_reader_of_the_clock_writes_into_the_newer_slice(self) -> None:
        clock = Clock(100.0)
        window = SlidingWindowSketch(clock, window_seconds=10, slices=10)
        window.add(1.0)
        newer = window.merged()
        clock.now = 99.0  # as if this thread read the clock before another one rotated
        window.add(2.0)
        window.add(0.0)
        clock.now = 100.0
        assert window.merged().count == newer.count + 2

    def test_threads_lose_no_observation(self) -> None:
        clock = FakeClock()
        window = SlidingWindowSketch(clock.monotonic, window_seconds=300, slices=10)
        per_thread = 5_000

        def work(seed: int) -> None:
            rng = random.Random(seed)
            for i in range(per_thread):
                window.add(rng.expovariate(10.0))
                if seed == 0 and i % 1000 == 0:
                    clock.advance(1)  # rotations race with the writers

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert window.merged().count == 8 * per_thread

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"window_seconds": 0}, "window_seconds"),
            ({"window_seconds": math.inf}, "window_seconds"),
            ({"slices": 0}, "slices"),
        ],
    )
    def test_settings_are_validated(self, kwargs: dict[str, float], field: str) -> None:
        with pytest.raises(ValidationError) as info:
            SlidingWindowSketch(FakeClock().monotonic, **kwargs)  # type: ignore[arg-type]
        assert info.value.field == field


def test_merging_past_the_cap_collapses() -> None:
    left = sketch_of([10.0**exponent for exponent in range(10)], max_bins=16)
    right = sketch_of([10.0**exponent for exponent in range(10, 20)], max_bins=16)
    left.merge(right)
    assert len(left.positive) == 16
    assert left.count == 20
    assert left.quantile(1.0) == 1e19


def test_merging_a_collapsed_sketch_into_one_without_low_values() -> None:
    collapsed = sketch_of([10.0**exponent for exponent in range(20)], max_bins=16)
    high = sketch_of([1e25], max_bins=16)
    high.merge(collapsed)  # nothing of ``high`` lies below the incoming floor
    assert high.positive.floor >= collapsed.positive.floor
    assert len(high.positive) == 16
    assert high.count == 21
    assert high.quantile(1.0) == 1e25
