"""Metric families and their series: the part of :mod:`buttress.observe.metrics` that records.

A family is a declared metric (a name, a kind, label names); a series is one label-value combination of
it, wrapping the prometheus-client object that holds the number. Series are cached in a plain dict read
without a lock, so ``family.labels(host="a").inc()`` costs a tuple, a dict lookup and prometheus-client's
own increment. The family checks names and labels when declared and caps its series.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, cast

import prometheus_client

from buttress.errors import ConflictError, ValidationError
from buttress.observe._timed import Timed, TimedTarget
from buttress.observe.sketch import QuantileSketch, WindowStats

if TYPE_CHECKING:
    from buttress.observe.metrics import MetricsRegistry

__all__ = [
    "DEFAULT_BUCKETS",
    "OVERFLOW_LABEL_VALUE",
    "OVERFLOW_METRIC",
    "Counter",
    "CounterChild",
    "Family",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "Spec",
    "check_buckets",
    "describe",
    "timed_target",
]

DEFAULT_BUCKETS: tuple[float, ...] = tuple(prometheus_client.Histogram.DEFAULT_BUCKETS)
OVERFLOW_LABEL_VALUE = "__overflow__"
OVERFLOW_METRIC = "buttress_metrics_series_overflow_total"

_log = logging.getLogger("buttress.observe.metrics")
_GAUGE_MODES = tuple(sorted(prometheus_client.Gauge._MULTIPROC_MODES))


def check_buckets(buckets: Sequence[float], name: str) -> tuple[float, ...]:
    try:
        bounds = tuple(float(b) for b in buckets)
    except (TypeError, ValueError):
        bounds = ()
    if bounds and bounds[-1] != math.inf:
        bounds += (math.inf,)
    if len(bounds) < 2 or any(math.isnan(b) or b >= c for b, c in itertools.pairwise(bounds)):
        raise ValidationError(
            f"buckets of {name} must be increasing numbers (upper bounds), e.g. (0.01, 0.1, 1.0); "
            f"got {buckets!r}",
            field="buckets",
        )
    return bounds


# --- series ---------------------------------------------------------------------------------------------


class _Window(Protocol):
    def add(self, value: float) -> None: ...
    def merged(self) -> QuantileSketch: ...
    def stats(self) -> WindowStats: ...


class _Series:
    """What every series shares: the prometheus object it writes to and its family (for messages)."""

    __slots__ = ("_family", "_prom")

    _family: Family[Any]
    _prom: Any

    def _explain(self, exc: ValueError) -> ValidationError:
        """Turn prometheus-client's ValueError into one that says what to do."""
        if isinstance(self, Family) and self.labelnames:
            return self.needs_labels()
        return ValidationError(f"{self._family.name}: {exc}", field="value")

    def _samples(self) -> dict[str, float]:
        if isinstance(self, Family) and self.labelnames:
            raise self.needs_labels()
        return {s.name: s.value for s in self._prom.collect()[0].samples if "le" not in s.labels}


class CounterChild(_Series):
    """One counter series: a count that only goes up."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        try:
            self._prom.inc(amount)
        except ValueError as exc:
            if amount < 0:
                raise ValidationError(
                    f"{self._family.name} got inc({amount!r}): counters only go up; use a gauge for values "
                    "that fall",
                    field="amount",
                ) from None
            raise self._explain(exc) from None

    @property
    def value(self) -> float:
        return self._samples()[self._family.name]


class GaugeChild(_Series):
    """One gauge series: a value that goes up and down."""

    __slots__ = ()

    def set(self, value: float) -> None:
        try:
            self._prom.set(value)
        except ValueError as exc:
            raise self._explain(exc) from None

    def inc(self, amount: float = 1.0) -> None:
        try:
            self._prom.inc(amount)
        except ValueError as exc:
            raise self._explain(exc) from None

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    @property
    def value(self) -> float:
        return self._samples()[self._family.name]


class HistogramChild(_Series):
    """One histogram series: Prometheus buckets plus a sliding-window quantile sketch."""

    __slots__ = ("_split_timed", "_timed", "_window")

    _window: _Window
    _timed: TimedTarget | None  # timed() into this series
    _split_timed: TimedTarget | None  # on the outcome="success" series: success here, errors next door

    def observe(self, value: float) -> None:
        self._window.add(value)  # first: it refuses NaN and infinities before prometheus counts them
        self._prom.observe(value)

    @property
    def count(self) -> int:
        return int(self._samples()[self._family.name + "_count"])

    @property
    def sum(self) -> float:
        return self._samples()[self._family.name + "_sum"]

    def window_stats(self) -> WindowStats:
        """Count, sum, mean, min, max, p50, p95 and p99 of the values in the sliding window."""
        return self._window.stats()

    def window_sketch(self) -> QuantileSketch:
        """The merged sketch of the window, for other quantiles or for merging series."""
        return self._window.merged()


class _OverflowCounter(CounterChild):
    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        super().inc(amount)
        self._family.count_overflow()


class _OverflowGauge(GaugeChild):
    __slots__ = ()

    def set(self, value: float) -> None:
        super().set(value)
        self._family.count_overflow()

    def inc(self, amount: float = 1.0) -> None:
        super().inc(amount)
        self._family.count_overflow()


class _OverflowHistogram(HistogramChild):
    __slots__ = ()

    def observe(self, value: float) -> None:
        super().observe(value)
        self._family.count_overflow()


# --- families ---------------------------------------------------------------------------------------------

ChildT = TypeVar("ChildT", bound=_Series)
Spec = tuple[str, frozenset[str], tuple[tuple[str, Any], ...]]
"""What makes two declarations the same metric: kind, label names (in any order), kind options."""


class Family(Generic[ChildT]):
    """A named metric and its series, one per label-value combination, capped at ``max_series``.

    The family is also its own unlabelled series (it subclasses the child type), so ``counter.inc()``
    works when the metric has no labels and explains itself when it has.
    """

    kind: ClassVar[str]
    _child_type: ClassVar[type[_Series]]
    _overflow_type: ClassVar[type[_Series]]
    _prometheus_type: ClassVar[Any]
    _prom: Any  # the prometheus-client parent metric (a slot of the child class the family also is)

    def __init__(
        self,
        registry: MetricsRegistry,
        name: str,
        description: str,
        labelnames: tuple[str, ...],
        **options: Any,
    ) -> None:
        self.name = name
        self.description = description
        self.labelnames = labelnames
        self.spec: Spec = (self.kind, frozenset(labelnames), tuple(sorted(options.items())))
        self._registry = registry
        self._family = self
        self._lock = threading.Lock()
        self._overflow: ChildT | None = None
        self._children: dict[tuple[str, ...], ChildT] = {}
        if not labelnames:
            self._children[()] = cast(ChildT, self)  # a family without labels is its own only series
        try:
            self._prom = self._prometheus_type(
                name, description, labelnames, registry=registry.prometheus_registry, **options
            )
        except ValueError as exc:  # a clash of exposed series names, e.g. x_total and x_created
            raise ConflictError(
                f"cannot declare {name}: {exc}; choose another name", context={"metric": name}
            ) from None

    @classmethod
    def check_options(cls, name: str, **options: Any) -> dict[str, Any]:
        """Validate and normalise the kind's own declaration options."""
        return options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, labels={self.labelnames!r})"

    def labels(self, **values: object) -> ChildT:
        """The series for these label values (converted with ``str``); created on first use."""
        names = self.labelnames
        if len(values) == len(names):
            try:
                key = tuple([str(values[name]) for name in names])
            except KeyError:
                pass
            else:
                child = self._children.get(key)
                return child if child is not None else self._add(key)
        raise ValidationError(
            f"{self.name} takes labels {names!r}, got {tuple(sorted(values))!r}; "
            f"e.g. .labels({_example(names)})",
            field="labels",
        )

    def _add(self, key: tuple[str, ...]) -> ChildT:
        with self._lock:
            child = self._children.get(key)
            if child is not None:
                return child
            if len(self._children) < self._registry.max_series:
                child = self._children[key] = self._new_child(self._child_type, key)
                return child
            if self._overflow is None:
                _log.warning(
                    "metric %s reached %d label sets; new ones are recorded as %s",
                    self.name,
                    self._registry.max_series,
                    OVERFLOW_LABEL_VALUE,
                )
                self._overflow = self._new_child(self._overflow_type, (OVERFLOW_LABEL_VALUE,) * len(key))
            return self._overflow

    def _new_child(self, cls: type[_Series], key: tuple[str, ...]) -> ChildT:
        child = cls.__new__(cls)
        child._family = self
        child._prom = self._prom.labels(*key)
        self._init_child(child)
        return cast(ChildT, child)

    def _init_child(self, child: Any) -> None:
        """Per-kind extra state of a new series (the histogram's window)."""

    def needs_labels(self) -> ValidationError:
        return ValidationError(
            f"{self.name} has labels {self.labelnames!r}: record through "
            f".labels({_example(self.labelnames)})",
            field="labels",
        )

    def count_overflow(self) -> None:
        if self.name != OVERFLOW_METRIC:
            self._registry.overflow_counter.labels(metric=self.name).inc()

    def series(self) -> list[tuple[dict[str, str], ChildT]]:
        """Every series with its labels, the overflow series last."""
        items = list(self._children.items())
        if self._overflow is not None:
            items.append(((OVERFLOW_LABEL_VALUE,) * len(self.labelnames), self._overflow))
        return [(dict(zip(self.labelnames, key, strict=True)), child) for key, child in items]

    def snapshot(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "description": self.description,
            "labels": list(self.labelnames),
            "series": [{"labels": labels, **self._values(child)} for labels, child in self.series()],
        }

    def _values(self, child: ChildT) -> dict[str, Any]:
        return {"value": child._samples()[self.name]}


def _example(names: Sequence[str]) -> str:
    return ", ".join(f'{name}="..."' for name in names)


def describe(spec: Spec) -> str:
    kind, labelnames, options = spec
    text = f"a {kind} with labels {tuple(sorted(labelnames))!r}"
    return text + "".join(f" and {option}={value!r}" for option, value in options)


class Counter(CounterChild, Family[CounterChild]):
    """A counter family; an unlabelled counter records with ``inc()`` directly."""

    kind = "counter"
    _child_type = CounterChild
    _overflow_type = _OverflowCounter
    _prometheus_type = prometheus_client.Counter


class Gauge(GaugeChild, Family[GaugeChild]):
    """A gauge family; ``multiprocess_mode`` says how processes combine in multiprocess mode."""

    kind = "gauge"
    _child_type = GaugeChild
    _overflow_type = _OverflowGauge
    _prometheus_type = prometheus_client.Gauge

    @classmethod
    def check_options(cls, name: str, **options: Any) -> dict[str, Any]:
        multiprocess_mode = options.get("multiprocess_mode", "liveall")
        if multiprocess_mode not in _GAUGE_MODES:
            raise ValidationError(
                f"multiprocess_mode of {name} must be one of {_GAUGE_MODES}, got {multiprocess_mode!r}; "
                "'livesum' adds live processes' values, 'max' keeps the largest",
                field="multiprocess_mode",
            )
        return {"multiprocess_mode": multiprocess_mode}


class _NeedsLabels:
    """Stands in for the window of a labelled histogram family, so ``observe`` explains what to do."""

    def __init__(self, family: Family[Any]) -> None:
        self._family = family

    def add(self, value: float) -> None:
        raise self._family.needs_labels()

    def merged(self) -> QuantileSketch:
        raise self._family.needs_labels()

    def stats(self) -> WindowStats:
        raise self._family.needs_labels()


class Histogram(HistogramChild, Family[HistogramChild]):
    """A histogram family: Prometheus buckets for ``/metrics``, a sliding window per series for quantiles."""

    kind = "histogram"
    _child_type = HistogramChild
    _overflow_type = _OverflowHistogram
    _prometheus_type = prometheus_client.Histogram

    def __init__(
        self,
        registry: MetricsRegistry,
        name: str,
        description: str,
        labelnames: tuple[str, ...],
        **options: Any,
    ) -> None:
        super().__init__(registry, name, description, labelnames, **options)
        self.buckets: tuple[float, ...] = options["buckets"]
        self._timed = self._split_timed = None
        if labelnames:
            self._window = _NeedsLabels(self)
        else:
            self._init_child(self)

    @classmethod
    def check_options(cls, name: str, **options: Any) -> dict[str, Any]:
        return {"buckets": check_buckets(options.get("buckets", DEFAULT_BUCKETS), name)}

    def _init_child(self, child: Any) -> None:
        child._window = self._registry.new_window()
        child._timed = child._split_timed = None

    def _values(self, child: HistogramChild) -> dict[str, Any]:
        samples = child._samples()
        return {
            "count": int(samples[self.name + "_count"]),
            "sum": samples[self.name + "_sum"],
            "window": child.window_stats(),
        }

    def timed(self, **labels: object) -> Timed:
        """Time a block or a function into this histogram (see :func:`buttress.observe.metrics.timed`)."""
        return Timed(timed_target(self, labels))


def timed_target(histogram: HistogramChild, labels: Mapping[str, object]) -> TimedTarget:
    """Where ``timed(histogram, **labels)`` records; cached on the series, so repeated timers are cheap."""
    cached = histogram._timed
    if cached is not None and not labels:
        return cached
    family = cast(Histogram, histogram._family)
    if not family.name.endswith("_seconds"):
        raise ValidationError(
            f"timed() records seconds, so the histogram name must end in '_seconds'; got {family.name!r}",
            field="name",
        )
    now = family._registry.now
    outcome = "outcome" in family.labelnames
    if histogram is not family:  # a series already: record there as it is
        if labels or outcome:
            raise ValidationError(
                f"timed() got a series of {family.name} and labels {sorted(labels)!r}, or a series whose "
                "outcome timed() should set; pass the histogram and its other labels instead",
                field="labels",
            )
        child = histogram
    elif outcome:
        expected = set(family.labelnames) - {"outcome"}
        if set(labels) != expected:
            raise ValidationError(
                f"timed({family.name}) takes labels {sorted(expected)!r} and sets 'outcome' itself; "
                f"got {sorted(labels)!r}",
                field="labels",
            )
        success = family.labels(**labels, outcome="success")
        if success._split_timed is None:
            error = family.labels(**labels, outcome="error")
            success._split_timed = TimedTarget(success.observe, error.observe, now)
        return success._split_timed
    else:
        child = family.labels(**labels)
    if child._timed is None:
        child._timed = TimedTarget(child.observe, child.observe, now)
    return child._timed
