"""Recording metrics: buttress.observe.metrics against prometheus-client and ddsketch, in the same run."""

from __future__ import annotations

import prometheus_client
from ddsketch import DDSketch
from prometheus_client import CollectorRegistry, generate_latest

from benchmarks._harness import Row, Table, measure_ns
from buttress.observe.metrics import MetricsRegistry, QuantileSketch, timed

PROM = "prometheus-client"
DD = "ddsketch"
SERIES = 1_000
VALUE = 0.042  # a 42 ms latency; the same value for every candidate


def _prometheus() -> dict[str, object]:
    registry = CollectorRegistry()
    return {
        "registry": registry,
        "counter": prometheus_client.Counter("plain_runs_total", "Runs.", registry=registry),
        "labelled": prometheus_client.Counter(
            "plain_requests_total", "Requests.", ["host"], registry=registry
        ),
        "histogram": prometheus_client.Histogram("plain_latency_seconds", "Latency.", registry=registry),
        "labelled_histogram": prometheus_client.Histogram(
            "plain_host_latency_seconds", "Latency.", ["host"], registry=registry
        ),
    }


def _render_pair() -> tuple[MetricsRegistry, CollectorRegistry]:
    """1,000 series in each: 500 counter series and 500 histogram series, with one observation each."""
    ours = MetricsRegistry()
    counter = ours.counter("buttress_bench_requests_total", "Requests.", labels=("host",))
    histogram = ours.histogram("buttress_bench_latency_seconds", "Latency.", labels=("host",))
    plain = CollectorRegistry()
    plain_counter = prometheus_client.Counter("bench_requests_total", "Requests.", ["host"], registry=plain)
    plain_histogram = prometheus_client.Histogram(
        "bench_latency_seconds", "Latency.", ["host"], registry=plain
    )
    for i in range(SERIES // 2):
        host = f"host-{i}"
        counter.labels(host=host).inc()
        histogram.labels(host=host).observe(VALUE)
        plain_counter.labels(host=host).inc()
        plain_histogram.labels(host=host).observe(VALUE)
    return ours, plain


def _noop() -> None:
    return None


def run() -> Table:
    ours = MetricsRegistry()
    counter = ours.counter("buttress_bench_runs_total", "Runs.")
    labelled = ours.counter("buttress_bench_requests_total", "Requests.", labels=("host",))
    histogram = ours.histogram("buttress_bench_latency_seconds", "Latency.")
    labelled_histogram = ours.histogram("buttress_bench_host_latency_seconds", "Latency.", labels=("host",))
    plain = _prometheus()
    p_counter = plain["counter"]
    p_labelled = plain["labelled"]
    p_histogram = plain["histogram"]
    p_labelled_histogram = plain["labelled_histogram"]
    assert isinstance(p_counter, prometheus_client.Counter)
    assert isinstance(p_labelled, prometheus_client.Counter)
    assert isinstance(p_histogram, prometheus_client.Histogram)
    assert isinstance(p_labelled_histogram, prometheus_client.Histogram)
    sketch, dd = QuantileSketch(0.01), DDSketch(0.01)
    render_ours, render_plain = _render_pair()
    assert render_ours.render_prometheus().count(b'host="host-') == generate_latest(render_plain).count(
        b'host="host-'
    )

    def timed_block() -> None:
        with timed(histogram):
            _noop()

    def prometheus_timer() -> None:
        with p_histogram.time():
            _noop()

    rows = [
        Row("counter inc(), no labels", measure_ns(counter.inc), {PROM: measure_ns(p_counter.inc)}),
        Row(
            'counter .labels(host="a").inc()',
            measure_ns(lambda: labelled.labels(host="a").inc()),
            {PROM: measure_ns(lambda: p_labelled.labels(host="a").inc())},
        ),
        Row(
            "histogram observe(), no labels (buttress also feeds the window sketch)",
            measure_ns(lambda: histogram.observe(VALUE)),
            {PROM: measure_ns(lambda: p_histogram.observe(VALUE))},
        ),
        Row(
            'histogram .labels(host="a").observe()',
            measure_ns(lambda: labelled_histogram.labels(host="a").observe(VALUE)),
            {PROM: measure_ns(lambda: p_labelled_histogram.labels(host="a").observe(VALUE))},
        ),
        Row(
            "quantile sketch add() (no lock, no window)",
            measure_ns(lambda: sketch.add(VALUE)),
            {DD: measure_ns(lambda: dd.add(VALUE))},
        ),
        Row(
            "timed() context manager around a no-op (vs Histogram.time())",
            measure_ns(timed_block),
            {PROM: measure_ns(prometheus_timer)},
        ),
        Row(
            f"render /metrics text, {SERIES:,} series",
            measure_ns(render_ours.render_prometheus, repeat=5, min_time=0.2),
            {PROM: measure_ns(lambda: generate_latest(render_plain), repeat=5, min_time=0.2)},
        ),
    ]
    return Table(
        title="Metrics: recording and exposition (buttress.observe.metrics)",
        anchors=[PROM, DD],
        rows=rows,
        notes=[
            (
                "prometheus-client is called directly on its own CollectorRegistry; buttress wraps the same "
                "prometheus-client objects, so a counter costs prometheus-client's increment plus one call."
            ),
            (
                "buttress histograms also add every value to a sliding-window quantile sketch (a log, a dict "
                "increment under a per-series lock, a clock read): the extra cost in the observe rows."
            ),
            (
                "The sketch row compares buttress's QuantileSketch.add with ddsketch's DDSketch.add, both at "
                "1% relative accuracy, neither locking."
            ),
            (
                f"The render row exposes {SERIES:,} series (500 counter series and 500 histogram series with "
                "default buckets) with prometheus-client's generate_latest in both columns."
            ),
        ],
    )
