"""The metrics registry: declaring, recording, the series cap, snapshot, timed(), multiprocess mode."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import multiprocessing
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import values as prometheus_values

from buttress.clock import FakeClock
from buttress.errors import ConfigError, ConflictError, ValidationError
from buttress.observe.metrics import (
    CONTENT_TYPE,
    DEFAULT_BUCKETS,
    OVERFLOW_LABEL_VALUE,
    OVERFLOW_METRIC,
    Counter,
    Histogram,
    MetricsRegistry,
    Timed,
    clear_multiprocess_dir,
    get_metrics,
    mark_process_dead,
    reset_metrics,
    timed,
)


@pytest.fixture(autouse=True)
def _fresh_default_registry() -> Iterator[None]:
    reset_metrics()
    yield
    reset_metrics()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(clock: FakeClock) -> MetricsRegistry:
    return MetricsRegistry(clock=clock)


def exposition(registry: MetricsRegistry) -> str:
    return registry.render_prometheus().decode()


# --- declaration --------------------------------------------------------------------------------------------


class TestNames:
    @pytest.mark.parametrize(
        ("kind", "name", "message"),
        [
            (
                "counter",
                "http.requests",
                (
                    "counter name 'http.requests' must look like buttress_<component>_<what>_<unit>: "
                    "lowercase words of letters and digits joined by single underscores, "
                    "e.g. 'buttress_http_requests_total'"
                ),
            ),
            (
                "gauge",
                "Buttress_Cache_Size_Bytes",
                "e.g. 'buttress_cache_size_bytes'",
            ),
            ("histogram", "buttress_x", "e.g. 'buttress_http_request_duration_seconds'"),
            ("histogram", "buttress__double_seconds", "e.g. 'buttress_double_seconds'"),
            ("gauge", "buttress_a_b\n", "must look like buttress_<component>_<what>_<unit>"),
            (
                "counter",
                "buttress_http_requests",
                (
                    "counter name 'buttress_http_requests' must end in '_total', "
                    "e.g. 'buttress_http_requests_total'"
                ),
            ),
            (
                "gauge",
                "buttress_http_requests_total",
                (
                    "gauge name 'buttress_http_requests_total' must not end in '_total', which Prometheus "
                    "uses for counters and histogram series; end it with the unit, "
                    "e.g. 'buttress_cache_size_bytes'"
                ),
            ),
            ("histogram", "buttress_http_latency_bucket", "must not end in '_bucket'"),
            ("histogram", "buttress_http_latency_count", "must not end in '_count'"),
        ],
    )
    def test_bad_names_are_refused_with_an_example(
        self, registry: MetricsRegistry, kind: str, name: str, message: str
    ) -> None:
        declare = getattr(registry, kind)
        with pytest.raises(ValidationError) as info:
            declare(name, "A description.")
        assert message in str(info.value)
        assert info.value.field == "name"
        assert registry.get(name) is None

    def test_a_name_that_is_not_a_string(self, registry: MetricsRegistry) -> None:
        with pytest.raises(ValidationError, match="counter name 42 must look like"):
            registry.counter(42, "x")  # type: ignore[arg-type]

    def test_description_is_required(self, registry: MetricsRegistry) -> None:
        with pytest.raises(ValidationError, match="needs a description") as info:
            registry.counter("buttress_jobs_runs_total", "  ")
        assert info.value.field == "description"

    def test_a_clash_of_exposed_series_names_is_a_conflict(self, registry: MetricsRegistry) -> None:
        registry.histogram("buttress_jobs_duration_seconds", "Durations.")
        with pytest.raises(ConflictError, match="buttress_jobs_duration_seconds_sum"):
            registry.counter("buttress_jobs_duration_seconds_sum_total", "Clashes with the histogram's _sum.")
        assert registry.get("buttress_jobs_duration_seconds_sum_total") is None


class TestLabels:
    @pytest.mark.parametrize(
        ("labels", "message"),
        [
            ("host", "must be a sequence of label names such as ('host',), not a string"),
            (("Host",), "label name 'Host' of buttress_http_requests_total must be lowercase"),
            (("__name",), "must be lowercase letters, digits and underscores starting with a letter"),
            (("le",), "not one of ['le', 'pid', 'quantile']"),
            (("host", "host"), "repeat a name"),
        ],
    )
    def test_bad_label_names(self, registry: MetricsRegistry, labels: object, message: str) -> None:
        with pytest.raises(ValidationError) as info:
            registry.counter("buttress_http_requests_total", "Requests.", labels=labels)  # type: ignore[arg-type]
        assert message in str(info.value)
        assert info.value.field == "labels"

    def test_labels_must_match_the_declaration(self, registry: MetricsRegistry) -> None:
        counter = registry.counter("buttress_http_requests_total", "Requests.", labels=("host", "method"))
        for bad in ({"host": "a"}, {"host": "a", "verb": "GET"}, {"host": "a", "method": "GET", "x": "1"}):
            with pytest.raises(ValidationError) as info:
                counter.labels(**bad)
            assert "buttress_http_requests_total takes labels ('host', 'method')" in str(info.value)
            assert 'e.g. .labels(host="...", method="...")' in str(info.value)

    def test_values_are_strings_so_200_and_200_are_one_series(self, registry: MetricsRegistry) -> None:
        counter = registry.counter("buttress_http_responses_total", "Responses.", labels=("status",))
        counter.labels(status=200).inc()
        counter.labels(status="200").inc()
        assert counter.labels(status="200") is counter.labels(status=200)
        assert counter.labels(status=200).value == 2.0

    def test_an_unlabelled_metric_is_its_own_series(self, registry: MetricsRegistry) -> None:
        counter = registry.counter("buttress_jobs_runs_total", "Runs.")
        assert counter.labels() is counter
        with pytest.raises(ValidationError, match=r"takes labels \(\), got \('host',\)"):
            counter.labels(host="a")


class TestRedeclaration:
    def test_same_declaration_returns_the_same_object(self, registry: MetricsRegistry) -> None:
        first = registry.counter("buttress_http_requests_total", "Requests.", labels=("host", "method"))
        again = registry.counter("buttress_http_requests_total", "Other words.", labels=("method", "host"))
        assert again is first
        hist = registry.histogram("buttress_http_latency_seconds", "Latency.", buckets=(0.1, 1.0))
        assert (
            registry.histogram("buttress_http_latency_seconds", "Latency.", buckets=[0.1, 1, math.inf])
            is hist
        )
        gauge = registry.gauge("buttress_pool_connections", "Open.", multiprocess_mode="livesum")
        assert registry.gauge("buttress_pool_connections", "Open.", multiprocess_mode="livesum") is gauge
        assert registry.get("buttress_pool_connections") is gauge

    def test_different_kind_is_a_conflict(self, registry: MetricsRegistry) -> None:
        registry.histogram("buttress_jobs_wait_seconds", "Wait.", labels=("queue",))
        with pytest.raises(ConflictError) as info:
            registry.gauge("buttress_jobs_wait_seconds", "Wait.", labels=("queue",))
        assert str(info.value) == (
            "buttress_jobs_wait_seconds is already declared as a histogram with labels ('queue',) and "
            f"buckets={(*DEFAULT_BUCKETS,)!r}; this declaration asks for a gauge with labels ('queue',) and "
            "multiprocess_mode='liveall'. Declare it once (a module-level constant) or use another name"
        )
        assert info.value.context == {"metric": "buttress_jobs_wait_seconds"}

    def test_different_labels_buckets_or_mode_are_conflicts(self, registry: MetricsRegistry) -> None:
        registry.counter("buttress_http_requests_total", "Requests.", labels=("host",))
        with pytest.raises(
            ConflictError, match=r"labels \('host',\); this declaration asks for a counter with labels \(\)"
        ):
            registry.counter("buttress_http_requests_total", "Requests.")
        registry.histogram("buttress_http_latency_seconds", "Latency.", buckets=(0.1, 1.0))
        with pytest.raises(ConflictError, match=r"buckets=\(0\.5, inf\)"):
            registry.histogram("buttress_http_latency_seconds", "Latency.", buckets=(0.5,))
        registry.gauge("buttress_pool_connections", "Open.")
        with pytest.raises(ConflictError, match="multiprocess_mode='max'"):
            registry.gauge("buttress_pool_connections", "Open.", multiprocess_mode="max")

    @pytest.mark.parametrize("buckets", [(), (1.0, 0.5), (0.1, math.nan), ("a",), (math.inf,)])
    def test_bad_buckets(self, registry: MetricsRegistry, buckets: tuple[object, ...]) -> None:
        with pytest.raises(ValidationError, match="must be increasing numbers") as info:
            registry.histogram("buttress_http_latency_seconds", "Latency.", buckets=buckets)  # type: ignore[arg-type]
        assert info.value.field == "buckets"

    def test_bad_gauge_mode(self, registry: MetricsRegistry) -> None:
        with pytest.raises(
            ValidationError, match="multiprocess_mode of buttress_pool_connections must be one of"
        ):
            registry.gauge("buttress_pool_connections", "Open.", multiprocess_mode="average")


# --- recording ----------------------------------------------------------------------------------------------


class TestRecording:
    def test_counter(self, registry: MetricsRegistry) -> None:
        runs = registry.counter("buttress_jobs_runs_total", "Runs.")
        runs.inc()
        runs.inc(2.5)
        assert runs.value == 3.5
        assert "buttress_jobs_runs_total 3.5" in exposition(registry)

    def test_counters_only_go_up(self, registry: MetricsRegistry) -> None:
        runs = registry.counter("buttress_jobs_runs_total", "Runs.", labels=("queue",))
        with pytest.raises(ValidationError, match=r"got inc\(-1\): counters only go up; use a gauge") as info:
            runs.labels(queue="q").inc(-1)
        assert info.value.field == "amount"

    def test_gauge(self, registry: MetricsRegistry) -> None:
        depth = registry.gauge("buttress_jobs_queue_items", "Items waiting.", labels=("queue",))
        series = depth.labels(queue="mail")
        series.set(10)
        series.inc()
        series.dec(3)
        assert series.value == 8.0
        assert 'buttress_jobs_queue_items{queue="mail"} 8.0' in exposition(registry)
        with pytest.raises(ValidationError, match="could not convert string to float") as info:
            series.set("lots")  # type: ignore[arg-type]
        assert info.value.field == "value"

    def test_histogram(self, registry: MetricsRegistry) -> None:
        latency = registry.histogram("buttress_http_latency_seconds", "Latency.", buckets=(0.1, 1.0))
        for value in (0.05, 0.5, 2.0):
            latency.observe(value)
        assert latency.count == 3
        assert latency.sum == pytest.approx(2.55)
        text = exposition(registry)
        assert 'buttress_http_latency_seconds_bucket{le="0.1"} 1.0' in text
        assert 'buttress_http_latency_seconds_bucket{le="+Inf"} 3.0' in text
        stats = latency.window_stats()
        assert stats["count"] == 3
        assert stats["max"] == 2.0
        assert latency.window_sketch().quantile(0.5) == pytest.approx(0.5, rel=0.01)

    def test_histogram_refuses_non_finite_values_before_counting(self, registry: MetricsRegistry) -> None:
        latency = registry.histogram("buttress_http_latency_seconds", "Latency.")
        for bad in (math.nan, math.inf):
            with pytest.raises(ValidationError, match="finite numbers"):
                latency.observe(bad)
        assert latency.count == 0

    def test_labelled_metric_used_without_labels_explains(self, registry: MetricsRegistry) -> None:
        counter = registry.counter("buttress_http_requests_total", "Requests.", labels=("host",))
        gauge = registry.gauge("buttress_http_inflight_requests", "In flight.", labels=("host",))
        histogram = registry.histogram("buttress_http_latency_seconds", "Latency.", labels=("host",))
        expected = "has labels ('host',): record through .labels(host=\"...\")"
        for action in (
            counter.inc,
            gauge.inc,
            lambda: gauge.set(1),
            lambda: histogram.observe(1.0),
            lambda: counter.value,
            histogram.window_stats,
            histogram.window_sketch,
        ):
            with pytest.raises(ValidationError) as info:
                action()
            assert expected in str(info.value)
            assert info.value.field == "labels"


class TestSeriesCap:
    def test_new_label_sets_past_the_cap_go_to_overflow(
        self, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        registry = MetricsRegistry(clock=clock, max_series=3)
        counter = registry.counter("buttress_http_requests_total", "Requests.", labels=("host", "method"))
        with caplog.at_level(logging.WARNING, logger="buttress.observe.metrics"):
            for i in range(10):
                counter.labels(host=f"h{i}", method="GET").inc()
            counter.labels(host="h0", method="GET").inc()  # an existing series still records normally
        assert len(caplog.records) == 1
        assert "buttress_http_requests_total reached 3 label sets" in caplog.text
        overflow = counter.labels(host="never-seen", method="GET")
        assert overflow.value == 7.0
        assert counter.labels(host="h0", method="GET").value == 2.0
        assert registry.overflow_counter.labels(metric="buttress_http_requests_total").value == 7.0
        text = exposition(registry)
        overflow_labels = f'host="{OVERFLOW_LABEL_VALUE}",method="{OVERFLOW_LABEL_VALUE}"'
        assert f"buttress_http_requests_total{{{overflow_labels}}} 7.0" in text
        assert f'{OVERFLOW_METRIC}{{metric="buttress_http_requests_total"}} 7.0' in text
        series = registry.snapshot()["buttress_http_requests_total"]["series"]
        assert len(series) == 4
        assert series[-1]["labels"] == {"host": OVERFLOW_LABEL_VALUE, "method": OVERFLOW_LABEL_VALUE}

    def test_gauges_and_histograms_overflow_too(self, clock: FakeClock) -> None:
        registry = MetricsRegistry(clock=clock, max_series=1)
        gauge = registry.gauge("buttress_pool_connections", "Open.", labels=("pool",))
        histogram = registry.histogram("buttress_pool_wait_seconds", "Wait.", labels=("pool",))
        gauge.labels(pool="a").set(1)
        histogram.labels(pool="a").observe(0.1)
        gauge.labels(pool="b").set(5)
        gauge.labels(pool="c").inc()
        histogram.labels(pool="b").observe(0.2)
        assert gauge.labels(pool="z").value == 6.0
        assert histogram.labels(pool="z").count == 1
        overflow = registry.overflow_counter
        assert overflow.labels(metric="buttress_pool_connections").value == 2.0
        assert overflow.labels(metric="buttress_pool_wait_seconds").value == 1.0

    def test_the_overflow_counter_does_not_count_itself(self, clock: FakeClock) -> None:
        registry = MetricsRegistry(clock=clock, max_series=1)
        first = registry.counter("buttress_a_one_total", "One.", labels=("x",))
        second = registry.counter("buttress_a_two_total", "Two.", labels=("x",))
        for family in (first, second):
            family.labels(x="1").inc()
            family.labels(x="2").inc()  # overflows; the second metric's overflow overflows the counter
        overflow = registry.overflow_counter
        assert overflow.labels(metric="buttress_a_one_total").value == 1.0
        assert overflow.labels(metric=OVERFLOW_LABEL_VALUE).value == 1.0

    def test_a_series_created_meanwhile_by_another_thread_is_reused(self, registry: MetricsRegistry) -> None:
        counter = registry.counter("buttress_http_requests_total", "Requests.", labels=("host",))
        first = counter.labels(host="a")
        assert counter._add(("a",)) is first  # the re-check under the lock

    def test_max_series_is_validated(self) -> None:
        with pytest.raises(ValidationError, match="max_series must be at least 1"):
            MetricsRegistry(max_series=0)


class TestConcurrency:
    def test_counter_increments_from_threads_are_exact(self, registry: MetricsRegistry) -> None:
        counter = registry.counter("buttress_http_requests_total", "Requests.", labels=("host",))
        plain = registry.counter("buttress_jobs_runs_total", "Runs.")
        barrier = threading.Barrier(8)

        def work(index: int) -> None:
            barrier.wait()
            for _ in range(10_000):
                counter.labels(host=f"h{index % 2}").inc()
                plain.inc()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert plain.value == 80_000
        assert counter.labels(host="h0").value + counter.labels(host="h1").value == 80_000

    def test_histogram_observations_from_threads_are_all_counted(
        self, registry: MetricsRegistry, clock: FakeClock
    ) -> None:
        histogram = registry.histogram("buttress_http_latency_seconds", "Latency.", labels=("host",))
        barrier = threading.Barrier(8)

        def work(index: int) -> None:
            barrier.wait()
            series = histogram.labels(host="a")
            for i in range(5_000):
                series.observe((i % 100 + 1) / 1000)
                if index == 0 and i % 500 == 0:
                    clock.advance(1)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        series = histogram.labels(host="a")
        assert series.count == 40_000
        assert series.window_stats()["count"] == 40_000

    def test_declaring_from_threads_yields_one_metric(self, registry: MetricsRegistry) -> None:
        results: list[Counter] = []
        barrier = threading.Barrier(8)

        def declare() -> None:
            barrier.wait()
            results.append(registry.counter("buttress_http_requests_total", "Requests.", labels=("host",)))

        threads = [threading.Thread(target=declare) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(result) for result in results}) == 1


# --- snapshot and exposition --------------------------------------------------------------------------------


def test_snapshot_is_json_with_values_and_window_quantiles(
    registry: MetricsRegistry, clock: FakeClock
) -> None:
    registry.counter("buttress_http_requests_total", "Requests.", labels=("host",)).labels(host="a").inc(3)
    registry.gauge("buttress_pool_connections", "Open.").set(2)
    latency = registry.histogram("buttress_http_latency_seconds", "Latency.", labels=("host",))
    for i in range(1, 101):
        latency.labels(host="a").observe(i / 100)
    snapshot = json.loads(json.dumps(registry.snapshot()))
    assert snapshot["buttress_http_requests_total"] == {
        "type": "counter",
        "description": "Requests.",
        "labels": ["host"],
        "series": [{"labels": {"host": "a"}, "value": 3.0}],
    }
    assert snapshot["buttress_pool_connections"]["series"] == [{"labels": {}, "value": 2.0}]
    (series,) = snapshot["buttress_http_latency_seconds"]["series"]
    assert series["labels"] == {"host": "a"}
    assert series["count"] == 100
    assert series["sum"] == pytest.approx(50.5)
    window = series["window"]
    assert window["count"] == 100
    assert window["max"] == 1.0
    assert window["p50"] == pytest.approx(0.5, rel=0.01)
    assert window["p99"] == pytest.approx(0.99, rel=0.01)
    clock.advance(300)
    expired = registry.snapshot()["buttress_http_latency_seconds"]["series"][0]
    assert expired["count"] == 100  # the Prometheus histogram is cumulative ...
    assert expired["window"]["count"] == 0  # ... the window is not
    assert expired["window"]["p99"] is None


def test_window_settings_come_from_the_registry(clock: FakeClock) -> None:
    registry = MetricsRegistry(clock=clock, window_seconds=60, window_slices=6)
    latency = registry.histogram("buttress_http_latency_seconds", "Latency.")
    latency.observe(0.2)
    clock.advance(50)
    assert latency.window_stats()["count"] == 1
    assert latency.window_stats()["window_seconds"] == 60.0
    clock.advance(10)
    assert latency.window_stats()["count"] == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window_seconds": -1}, "window_seconds"),
        ({"window_slices": 0}, "slices"),
        ({"relative_accuracy": 2}, "relative_accuracy"),
    ],
)
def test_registry_validates_window_settings(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        MetricsRegistry(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_render_prometheus_and_content_type(registry: MetricsRegistry) -> None:
    registry.counter("buttress_http_requests_total", "Requests sent.", labels=("host",)).labels(
        host="a"
    ).inc()
    text = exposition(registry)
    assert "# HELP buttress_http_requests_total Requests sent." in text
    assert "# TYPE buttress_http_requests_total counter" in text
    assert 'buttress_http_requests_total{host="a"} 1.0' in text
    assert registry.content_type == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert registry.multiprocess_dir is None
    assert "metrics=" in repr(registry)
    assert repr(registry.get("buttress_http_requests_total")) == (
        "Counter('buttress_http_requests_total', labels=('host',))"
    )


# --- timed ------------------------------------------------------------------------------------------------


class TestTimed:
    def test_decorates_sync_functions_and_keeps_their_identity(
        self, registry: MetricsRegistry, clock: FakeClock
    ) -> None:
        latency = registry.histogram("buttress_jobs_run_seconds", "Run time.", labels=("job",))

        @timed(latency, job="mail")
        def send(to: str) -> str:
            """Send mail."""
            clock.advance(0.25)
            return f"sent to {to}"

        assert send("ann") == "sent to ann"
        assert send.__name__ == "send"
        assert send.__doc__ == "Send mail."
        with timed(latency, job="mail"):  # the series' timing target is built once and reused
            clock.advance(0.5)
        series = latency.labels(job="mail")
        assert series.count == 2
        assert series.sum == 0.75

    async def test_decorates_async_functions(self, registry: MetricsRegistry, clock: FakeClock) -> None:
        latency = registry.histogram("buttress_jobs_run_seconds", "Run time.")

        @timed(latency)
        async def work() -> int:
            await clock.asleep(0.5)
            return 7

        assert asyncio.iscoroutinefunction(work)
        assert await work() == 7
        assert latency.sum == 0.5

    async def test_records_on_exception_with_the_outcome_label(
        self, registry: MetricsRegistry, clock: FakeClock
    ) -> None:
        latency = registry.histogram("buttress_jobs_run_seconds", "Run time.", labels=("job", "outcome"))

        @timed(latency, job="sync")
        def fail() -> None:
            clock.advance(1)
            raise ValueError("boom")

        @timed(latency, job="async")
        async def afail() -> None:
            clock.advance(2)
            raise KeyError("boom")

        @timed(latency, job="async")
        async def succeed() -> None:
            clock.advance(3)

        with pytest.raises(ValueError, match="boom"):
            fail()
        with pytest.raises(KeyError):
            await afail()
        await succeed()
        assert latency.labels(job="sync", outcome="error").sum == 1
        assert latency.labels(job="async", outcome="error").sum == 2
        assert latency.labels(job="async", outcome="success").sum == 3
        assert latency.labels(job="sync", outcome="success").count == 0

    def test_without_an_outcome_label_errors_land_in_the_same_series(
        self, registry: MetricsRegistry, clock: FakeClock
    ) -> None:
        latency = registry.histogram("buttress_jobs_run_seconds", "Run time.")

        def fail() -> None:
            with timed(latency):
                clock.advance(1)
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail()
        with timed(latency):
            clock.advance(2)
        assert latency.count == 2
        assert latency.sum == 3

    async def test_async_context_manager(self, registry: MetricsRegistry, clock: FakeClock) -> None:
        latency = registry.histogram("buttress_jobs_run_seconds", "Run time.", labels=("outcome",))
        async with timed(latency):
            await clock.asleep(0.75)
        with pytest.raises(asyncio.CancelledError):
            async with timed(latency):
                raise asyncio.CancelledError
        assert latency.labels(outcome="success").sum == 0.75
        assert latency.labels(outcome="error").count == 1

    def test_a_series_and_the_histogram_method(self, registry: MetricsRegistry, clock: FakeClock) -> None:
        latency = registry.histogram("buttress_jobs_run_seconds", "Run time.", labels=("job",))
        with timed(latency.labels(job="a")):
            clock.advance(1)
        with latency.timed(job="b"):
            clock.advance(2)
        assert latency.labels(job="a").sum == 1
        assert latency.labels(job="b").sum == 2
        with pytest.raises(ValidationError, match="got a series of buttress_jobs_run_seconds and labels"):
            timed(latency.labels(job="a"), job="b")

    def test_targets_are_resolved_once_per_series(self, registry: MetricsRegistry, clock: FakeClock) -> None:
        latency = registry.histogram("buttress_jobs_run_seconds", "Run time.", labels=("job", "outcome"))
        for _ in range(3):
            with timed(latency, job="a"):
                clock.advance(1)
        assert latency.labels(job="a", outcome="success").count == 3
        assert latency.labels(job="a", outcome="success")._split_timed is not None
        with pytest.raises(ValidationError, match=r"outcome timed\(\) should set; pass the histogram"):
            timed(latency.labels(job="a", outcome="success"))

    def test_timed_needs_exactly_one_of_target_and_resolve(self) -> None:
        with pytest.raises(TypeError, match="exactly one"):
            Timed()

    def test_one_object_times_one_block_at_a_time(self, registry: MetricsRegistry) -> None:
        timer = timed(registry.histogram("buttress_jobs_run_seconds", "Run time."))
        with timer, pytest.raises(RuntimeError, match="already running; create one timed"):
            timer.__enter__()
        with timer:  # and it is reusable once the block has ended
            pass

    def test_a_decorated_function_serves_many_threads(self, registry: MetricsRegistry) -> None:
        latency = registry.histogram("buttress_jobs_run_seconds", "Run time.")

        @timed(latency)
        def work() -> None:
            pass

        threads = [threading.Thread(target=lambda: [work() for _ in range(500)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert latency.count == 2000

    def test_by_name_in_the_default_registry(self, clock: FakeClock) -> None:
        @timed("buttress_jobs_run_seconds", job="mail")
        def run() -> None:
            clock.advance(1)

        reset_metrics(MetricsRegistry(clock=clock))
        run()
        histogram = get_metrics().get("buttress_jobs_run_seconds")
        assert isinstance(histogram, Histogram)
        assert histogram.labelnames == ("job",)
        assert histogram.description == "Seconds spent in jobs_run_seconds (declared by timed())."
        assert histogram.labels(job="mail").sum == 1
        reset_metrics(MetricsRegistry(clock=clock))  # a new default: the timer follows it
        run()
        run()
        fresh = get_metrics().get("buttress_jobs_run_seconds")
        assert fresh is not histogram
        assert isinstance(fresh, Histogram)
        assert fresh.labels(job="mail").count == 2

    def test_by_name_uses_a_declared_histogram_with_outcome(self, clock: FakeClock) -> None:
        reset_metrics(MetricsRegistry(clock=clock))
        declared = get_metrics().histogram("buttress_jobs_run_seconds", "Run.", labels=("outcome",))
        with timed("buttress_jobs_run_seconds"):
            clock.advance(1)
        assert declared.labels(outcome="success").sum == 1

    @pytest.mark.parametrize(
        ("target", "labels", "error", "message"),
        [
            (
                "buttress_jobs_run_ms",
                {},
                ValidationError,
                "must end in '_seconds'; got 'buttress_jobs_run_ms'",
            ),
            ("jobs.run", {}, ValidationError, "histogram name 'jobs.run' must look like"),
            (3.5, {}, ValidationError, "timed() takes a Histogram, a series of one or a histogram name"),
        ],
    )
    def test_bad_targets(
        self, target: object, labels: dict[str, str], error: type[Exception], message: str
    ) -> None:
        with pytest.raises(error) as info:
            timed(target, **labels)  # type: ignore[arg-type]
        assert message in str(info.value)

    def test_counter_histogram_name_and_outcome_misuse(self, registry: MetricsRegistry) -> None:
        reset_metrics(registry)
        registry.gauge("buttress_jobs_busy_seconds", "Busy time.")
        by_name = timed("buttress_jobs_busy_seconds")
        with pytest.raises(
            ConflictError, match=r"timed\(\) needs a histogram, but buttress_jobs_busy_seconds"
        ):
            by_name.__enter__()
        counter_named = registry.counter("buttress_jobs_runs_total", "Runs.")
        with pytest.raises(
            ValidationError, match=r"takes a Histogram, .* got Counter\('buttress_jobs_runs_total'"
        ):
            timed(counter_named)  # type: ignore[arg-type]
        wrong_unit = registry.histogram("buttress_jobs_size_bytes", "Sizes.")
        with pytest.raises(ValidationError, match="must end in '_seconds'; got 'buttress_jobs_size_bytes'"):
            timed(wrong_unit)
        latency = registry.histogram("buttress_jobs_run_seconds", "Run.", labels=("job", "outcome"))
        with pytest.raises(ValidationError, match=r"takes labels \['job'\] and sets 'outcome' itself"):
            timed(latency, job="a", outcome="success")
        with pytest.raises(ValidationError, match="takes labels"):
            timed(latency)


# --- the process-wide registry ------------------------------------------------------------------------------


def test_get_metrics_is_lazy_shared_and_resettable() -> None:
    seen: list[MetricsRegistry] = []
    barrier = threading.Barrier(8)

    def get() -> None:
        barrier.wait()
        seen.append(get_metrics())

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(registry) for registry in seen}) == 1
    assert get_metrics() is seen[0]
    reset_metrics()
    assert get_metrics() is not seen[0]
    mine = MetricsRegistry()
    reset_metrics(mine)
    assert get_metrics() is mine


# --- multiprocess mode --------------------------------------------------------------------------------------


def test_multiprocess_dir_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="its directory is missing") as info:
        MetricsRegistry()
    assert "an existing directory, emptied when the service starts" in str(info.value)


def test_multiprocess_dir_set_after_import_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="was set after prometheus_client was imported"):
        MetricsRegistry()


def test_mark_process_dead_and_clear_are_no_ops_without_a_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    mark_process_dead(12345)
    assert clear_multiprocess_dir() == 0


def test_clear_multiprocess_dir_removes_only_db_files(tmp_path: Path) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"x")
    (tmp_path / "gauge_liveall_1.db").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("x")
    assert clear_multiprocess_dir(str(tmp_path)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def _mp_worker(amount: int) -> None:
    """Runs in a spawned worker: PROMETHEUS_MULTIPROC_DIR was in the environment before any import."""
    registry = MetricsRegistry()
    registry.counter("buttress_mp_jobs_total", "Jobs.", labels=("queue",)).labels(queue="q").inc(amount)
    registry.gauge("buttress_mp_busy_workers", "Busy.", multiprocess_mode="livesum").set(1)
    registry.histogram("buttress_mp_run_seconds", "Run.", buckets=(1.0,)).observe(0.5)


def _mp_parent(results: multiprocessing.Queue[tuple[str, str, list[str]]]) -> None:
    """Runs in a spawned "master": wipes the directory, runs two workers, renders their aggregate."""
    cleared = clear_multiprocess_dir()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_mp_worker, args=(amount,)) for amount in (3, 4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    registry = MetricsRegistry()
    before = registry.render_prometheus().decode()
    for worker in workers:
        mark_process_dead(worker.pid or 0)
    after = registry.render_prometheus().decode()
    facts = [str(registry.multiprocess_dir == os.environ["PROMETHEUS_MULTIPROC_DIR"]), str(cleared)]
    results.put((before, after, facts + [str(worker.exitcode) for worker in workers]))


def test_multiprocess_mode_aggregates_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "counter_999999.db").write_bytes(b"")  # a stale file from an "earlier run"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[str, str, list[str]]] = context.Queue()
    parent = context.Process(target=_mp_parent, args=(results,))
    parent.start()
    try:
        before, after, facts = results.get(timeout=110)
    except queue.Empty:  # pragma: no cover - only when the parent crashed
        pytest.fail(f"the multiprocess parent sent nothing (exit code {parent.exitcode})")
    parent.join(30)
    assert facts == [
        "True",
        "1",
        "0",
        "0",
    ]  # multiprocess mode on; one stale file wiped; workers exited cleanly
    assert parent.exitcode == 0
    assert 'buttress_mp_jobs_total{queue="q"} 7.0' in before
    assert "buttress_mp_busy_workers 2.0" in before  # livesum over the two workers
    assert "buttress_mp_run_seconds_count 2.0" in before
    assert 'buttress_mp_run_seconds_bucket{le="1.0"} 2.0' in before
    assert 'buttress_mp_jobs_total{queue="q"} 7.0' in after  # counters survive their processes ...
    assert "buttress_mp_busy_workers 2.0" not in after  # ... live gauges do not


def test_a_registry_in_multiprocess_mode_renders_the_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In-process half of the test above: as if prometheus_client had been imported in multiprocess mode."""
    monkeypatch.setattr(prometheus_values.ValueClass, "_multiprocess", True)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    registry = MetricsRegistry()
    assert registry.multiprocess_dir == str(tmp_path)
    assert registry.render_prometheus() == b""  # nothing written to the directory yet
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    mark_process_dead(4242)
    assert list(tmp_path.iterdir()) == []
