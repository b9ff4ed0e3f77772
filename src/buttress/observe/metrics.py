"""Metrics: the one registry every buttress component records into.

Counters, gauges and histograms live in a :class:`MetricsRegistry` that wraps a
:class:`prometheus_client.CollectorRegistry`, so ``/metrics`` is plain prometheus-client exposition, and
:meth:`MetricsRegistry.snapshot` gives the same numbers as JSON for the ops server and the dashboard::

    metrics = get_metrics()
    requests = metrics.counter("buttress_http_requests_total", "Requests sent.", labels=("host",))
    requests.labels(host="api.example.com").inc()
    latency = metrics.histogram("buttress_http_request_duration_seconds", "Latency.", labels=("host",))

    @timed(latency, host="api.example.com")
    async def call() -> None: ...

An application's own metrics go in the same registry (so ``/metrics`` serves them beside buttress's) under
its own prefix, through :meth:`MetricsRegistry.prefixed`::

    shop = get_metrics().prefixed("shop")
    orders = shop.counter("shop_orders_total", "Orders placed.", labels=("status",))

Rules, enforced when a metric is declared:

- Names are ``buttress_<component>_<what>_<unit>`` (``^buttress_[a-z0-9]+(_[a-z0-9]+)+$``), or
  ``<prefix>_<component>_<what>_<unit>`` through ``prefixed(prefix)``; counters end in ``_total``; other
  kinds may not end in a suffix Prometheus reserves (``_total``, ``_count``, ...).
- Declaring a metric again with the same kind, label names (in any order) and buckets returns the
  existing object, so a component can be built many times; anything else raises :class:`ConflictError`.
- Label values are capped per metric (``max_series``, 1000 by default). Past the cap, new label sets are
  recorded under one series whose every label is ``__overflow__``, and each such recording increments
  ``buttress_metrics_series_overflow_total{metric=...}``: a bug cannot explode cardinality, and it shows.

Histograms also keep a sliding window (5 minutes by default, 10 slices rotated by the registry's clock) of
a relative-error quantile sketch per series, for p50/p95/p99/max in :meth:`MetricsRegistry.snapshot`;
see :mod:`buttress.observe.sketch` for the error bound. :func:`timed` records durations in seconds; if
the histogram declares an ``outcome`` label, timed fills it with ``success`` or ``error`` (any exception),
otherwise both go to the same series.

Prometheus multiprocess mode (gunicorn/uvicorn workers): set ``PROMETHEUS_MULTIPROC_DIR`` in the
environment that starts the service, *before* Python imports prometheus_client; a registry built in a
process where it was set too late raises :class:`ConfigError`. Then :meth:`~MetricsRegistry.render_prometheus`
aggregates every process's files with ``MultiProcessCollector``. What that mode loses or needs:

- The directory must be emptied when the service starts (:func:`clear_multiprocess_dir` in the master),
  or counters resume from an earlier run's files.
- Call :func:`mark_process_dead` when a worker exits (gunicorn's ``child_exit``) so live gauges drop it.
- Gauges are combined by their ``multiprocess_mode``: the default ``liveall`` keeps one series per live
  process (a ``pid`` label); ``livesum``, ``max``, ``min`` or ``mostrecent`` combine them.
- Custom collectors registered on :attr:`~MetricsRegistry.prometheus_registry` are not exported, and
  counters lose their ``_created`` samples.
- :meth:`~MetricsRegistry.snapshot` and the sliding-window quantiles describe this process only.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _prometheus_values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.container import get_container
from buttress.errors import ConfigError, ConfigProblem, ConflictError, ValidationError
from buttress.observe._families import (
    DEFAULT_BUCKETS,
    OVERFLOW_LABEL_VALUE,
    OVERFLOW_METRIC,
    Counter,
    CounterChild,
    Family,
    Gauge,
    GaugeChild,
    Histogram,
    HistogramChild,
    Spec,
    describe,
    timed_target,
)
from buttress.observe._timed import Timed, TimedTarget
from buttress.observe.sketch import QuantileSketch, SlidingWindowSketch, WindowStats

_log = logging.getLogger(__name__)

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "OVERFLOW_LABEL_VALUE",
    "OVERFLOW_METRIC",
    "PREFIX",
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "MetricsRegistry",
    "PrefixedMetrics",
    "QuantileSketch",
    "SlidingWindowSketch",
    "Timed",
    "WindowStats",
    "clear_multiprocess_dir",
    "get_metrics",
    "mark_process_dead",
    "reset_metrics",
    "timed",
]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""Content type of :meth:`MetricsRegistry.render_prometheus` (the Prometheus text format 0.0.4)."""

FamilyT = TypeVar("FamilyT", bound=Family[Any])

PREFIX: Final = "buttress"
"""The prefix of buttress's own metrics; an application declares its own through ``prefixed``."""

_PREFIX = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_LABEL = re.compile(r"[a-z][a-z0-9_]*")
_RESERVED_LABELS = frozenset({"le", "quantile", "pid"})
_RESERVED_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created", "_info")
_EXAMPLES = {
    "counter": "buttress_http_requests_total",
    "gauge": "buttress_cache_size_bytes",
    "histogram": "buttress_http_request_duration_seconds",
}


# --- declaration checks -----------------------------------------------------------------------------------


def check_prefix(prefix: object) -> str:
    """``prefix`` if it can start metric names: a lowercase word, or words joined by single underscores."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValidationError(
            f"metric prefix {prefix!r} must be lowercase letters and digits starting with a letter, words "
            "joined by single underscores, without a trailing one; e.g. 'shop' (names then look like "
            "'shop_orders_total')",
            field="prefix",
        )
    return prefix


@functools.lru_cache(maxsize=64)
def _name_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{prefix}_[a-z0-9]+(_[a-z0-9]+)+")


def _suggest(name: str, kind: str, prefix: str) -> str:
    """A valid name close to a bad one, for the error message; the kind's example when none is close."""
    words = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not words.startswith(f"{prefix}_"):
        words = f"{prefix}_{words}"
    if kind == "counter" and not words.endswith("_total"):
        words += "_total"
    reserved = kind != "counter" and words.endswith(_RESERVED_SUFFIXES)
    if _name_pattern(prefix).fullmatch(words) and not reserved:
        return words
    return _EXAMPLES[kind].replace(PREFIX, prefix, 1)


def _application_hint(name: str) -> str:
    """How to declare ``name`` if it looks like an application's metric under a prefix of its own."""
    first = name.split("_", 1)[0]
    if first == PREFIX or not _PREFIX.fullmatch(first) or not _name_pattern(first).fullmatch(name):
        return ""
    return f"; for your application's own metrics declare them through get_metrics().prefixed({first!r})"


def check_name(name: object, kind: str, prefix: str = PREFIX) -> str:
    if not isinstance(name, str) or not _name_pattern(prefix).fullmatch(name):
        hint = _application_hint(name) if isinstance(name, str) and prefix == PREFIX else ""
        raise ValidationError(
            f"{kind} name {name!r} must look like {prefix}_<component>_<what>_<unit>: lowercase words of "
            f"letters and digits joined by single underscores, e.g. {_suggest(str(name), kind, prefix)!r}"
            + hint,
            field="name",
        )
    if kind == "counter" and not name.endswith("_total"):
        raise ValidationError(
            f"counter name {name!r} must end in '_total', e.g. {name + '_total'!r}", field="name"
        )
    if kind != "counter" and name.endswith(_RESERVED_SUFFIXES):
        raise ValidationError(
            f"{kind} name {name!r} must not end in {name[name.rindex('_') :]!r}, which Prometheus uses for "
            f"counters and histogram series; end it with the unit, e.g. "
            f"{_EXAMPLES[kind].replace(PREFIX, prefix, 1)!r}",
            field="name",
        )
    return name


def check_labels(labels: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise ValidationError(
            f"labels of {name} must be a sequence of label names such as ({labels!r},), not a string",
            field="labels",
        )
    names = tuple(labels)
    for label in names:
        if not isinstance(label, str) or not _LABEL.fullmatch(label) or label in _RESERVED_LABELS:
            raise ValidationError(
                f"label name {label!r} of {name} must be lowercase letters, digits and underscores starting "
                f"with a letter, and not one of {sorted(_RESERVED_LABELS)}; e.g. 'host'",
                field="labels",
            )
    if len(set(names)) != len(names):
        raise ValidationError(f"labels of {name} repeat a name: {names!r}", field="labels")
    return names


# --- the registry -----------------------------------------------------------------------------------------


class _Declarations:
    """``counter``, ``gauge`` and ``histogram``, written once for the registry and its prefixed views."""

    __slots__ = ()

    def _declare(
        self, cls: type[FamilyT], name: str, description: str, labels: Sequence[str], **options: Any
    ) -> FamilyT:
        raise NotImplementedError

    def counter(self, name: str, description: str, *, labels: Sequence[str] = ()) -> Counter:
        """Declare (or get again) a counter; ``name`` ends in ``_total``."""
        return self._declare(Counter, name, description, labels)

    def gauge(
        self, name: str, description: str, *, labels: Sequence[str] = (), multiprocess_mode: str = "liveall"
    ) -> Gauge:
        """Declare (or get again) a gauge; ``multiprocess_mode`` matters only in multiprocess mode."""
        return self._declare(Gauge, name, description, labels, multiprocess_mode=multiprocess_mode)

    def histogram(
        self,
        name: str,
        description: str,
        *,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        """Declare (or get again) a histogram; ``buckets`` are the Prometheus upper bounds."""
        return self._declare(Histogram, name, description, labels, buckets=buckets)


class MetricsRegistry(_Declarations):
    """Every metric of a process, exported through one :class:`prometheus_client.CollectorRegistry`.

    ``clock`` drives the histograms' sliding windows (and :func:`timed`); tests pass a FakeClock.
    """

    content_type = CONTENT_TYPE

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_series: int = 1000,
        window_seconds: float = 300.0,
        window_slices: int = 10,
        relative_accuracy: float = 0.01,
    ) -> None:
        if max_series < 1:
            raise ValidationError(
                f"max_series must be at least 1, got {max_series!r}; e.g. 1000", field="max_series"
            )
        self.clock = clock
        # time.monotonic itself for the system clock: one Python call less per observation
        self.now: Callable[[], float] = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self.max_series = max_series
        self.window_seconds = window_seconds
        self.window_slices = window_slices
        self.relative_accuracy = relative_accuracy
        self.new_window()  # validates the window settings now rather than at the first observation
        self.multiprocess_dir = _multiprocess_dir()
        self.prometheus_registry = CollectorRegistry()
        self._families: dict[str, Family[Any]] = {}
        self._lock = threading.Lock()
        self._collect_hooks: list[Callable[[MetricsRegistry], None]] = []
        self.overflow_counter = self.counter(
            OVERFLOW_METRIC,
            "Recordings sent to the __overflow__ series because a metric reached its label-set cap.",
            labels=("metric",),
        )

    def __repr__(self) -> str:
        return f"MetricsRegistry(metrics={len(self._families)}, multiprocess_dir={self.multiprocess_dir!r})"

    def new_window(self) -> SlidingWindowSketch:
        """A sliding-window sketch with this registry's settings; each histogram series gets one."""
        return SlidingWindowSketch(
            self.now,
            window_seconds=self.window_seconds,
            slices=self.window_slices,
            relative_accuracy=self.relative_accuracy,
        )

    def prefixed(self, prefix: str) -> PrefixedMetrics:
        """This registry, declaring an application's metrics: names start ``<prefix>_``, not ``buttress_``.

        The metrics are this registry's, exported by ``render_prometheus`` (the ops server's ``/metrics``)
        and ``snapshot`` with buttress's, under the same rules (kinds, suffixes, labels, series cap).
        """
        return PrefixedMetrics(self, prefix)

    def _declare(
        self, cls: type[FamilyT], name: str, description: str, labels: Sequence[str], **options: Any
    ) -> FamilyT:
        return self.declare_under(PREFIX, cls, name, description, labels, **options)

    def declare_under(
        self,
        prefix: str,
        cls: type[FamilyT],
        name: str,
        description: str,
        labels: Sequence[str],
        **options: Any,
    ) -> FamilyT:
        """Declare (or get again) a metric of kind ``cls`` whose name starts ``<prefix>_``; what
        ``counter``, ``gauge`` and ``histogram`` here and on :class:`PrefixedMetrics` come down to."""
        check_name(name, cls.kind, PREFIX if prefix == PREFIX else check_prefix(prefix))
        labelnames = check_labels(labels, name)
        if not isinstance(description, str) or not description.strip():
            raise ValidationError(
                f"{name} needs a description: one sentence saying what it counts, e.g. 'Requests sent.'",
                field="description",
            )
        options = cls.check_options(name, **options)
        with self._lock:
            existing = self._families.get(name)
            if existing is None:
                family = cls(self, name, description, labelnames, **options)
                self._families[name] = family
                return family
        wanted: Spec = (cls.kind, frozenset(labelnames), tuple(sorted(options.items())))
        if existing.spec != wanted:
            raise ConflictError(
                f"{name} is already declared as {describe(existing.spec)}; this declaration asks for "
                f"{describe(wanted)}. Declare it once (a module-level constant) or use another name",
                context={"metric": name},
            )
        return cast(FamilyT, existing)

    def get(self, name: str) -> Counter | Gauge | Histogram | None:
        """The metric declared under ``name``, or None."""
        return self._families.get(name)  # type: ignore[return-value]

    def add_collect_hook(self, hook: Callable[[MetricsRegistry], None]) -> None:
        """Run ``hook(registry)`` before every render and snapshot.

        For components whose hot path keeps plain counters (a metric ``inc`` costs a lock): the hook
        copies them into real metrics only when someone reads. A hook that raises is logged and skipped.
        """
        with self._lock:
            self._collect_hooks.append(hook)

    def remove_collect_hook(self, hook: Callable[[MetricsRegistry], None]) -> None:
        """Stop running ``hook``; a hook that was never added is ignored."""
        with self._lock:
            if hook in self._collect_hooks:
                self._collect_hooks.remove(hook)

    def collect(self) -> None:
        """Run the collect hooks now (render and snapshot do it themselves)."""
        for hook in list(self._collect_hooks):
            try:
                hook(self)
            except Exception:  # noqa: BLE001 - one broken hook must not hide every metric
                _log.exception("metrics collect hook %r failed", hook)

    def render_prometheus(self) -> bytes:
        """The Prometheus text exposition of every metric (of every process, in multiprocess mode)."""
        self.collect()
        if self.multiprocess_dir is not None:
            return _render_multiprocess(self.multiprocess_dir)
        return generate_latest(self.prometheus_registry)

    def snapshot(self) -> dict[str, Any]:
        """Every metric as JSON-ready data: values per label set; histograms with count, sum and window."""
        self.collect()
        return {family.name: family.snapshot() for family in list(self._families.values())}


class PrefixedMetrics(_Declarations):
    """A :class:`MetricsRegistry` seen by an application: it declares names under the application's prefix.

    Made by :meth:`MetricsRegistry.prefixed`; what it declares lives in that registry.
    """

    __slots__ = ("prefix", "registry")

    def __init__(self, registry: MetricsRegistry, prefix: str) -> None:
        self.registry = registry
        self.prefix = check_prefix(prefix)

    def __repr__(self) -> str:
        return f"PrefixedMetrics(prefix={self.prefix!r}, registry={self.registry!r})"

    def _declare(
        self, cls: type[FamilyT], name: str, description: str, labels: Sequence[str], **options: Any
    ) -> FamilyT:
        return self.registry.declare_under(self.prefix, cls, name, description, labels, **options)


# --- timed ------------------------------------------------------------------------------------------------


def timed(histogram: HistogramChild | str, /, **labels: object) -> Timed:
    """Record the seconds a block or a function takes into a histogram, on success and on exception.

    ``histogram`` is a :class:`Histogram` (with ``labels`` picking the series), one of its series
    (``latency.labels(host="a")``), or the name of a histogram in :func:`get_metrics`, looked up at each
    use and declared with ``labels`` as its label names if missing. Use it as ``@timed(...)`` on sync or
    async functions, or as ``with timed(...):`` / ``async with timed(...):``. The name must end in
    ``_seconds``. If the histogram declares an ``outcome`` label, timed sets it to ``success`` or, when an
    exception (any ``BaseException``) escapes, ``error``; otherwise both land in the same series.
    """
    if isinstance(histogram, HistogramChild):
        return Timed(timed_target(histogram, labels))
    if not isinstance(histogram, str):
        raise ValidationError(
            f"timed() takes a Histogram, a series of one or a histogram name, got {histogram!r}",
            field="histogram",
        )
    if not check_name(histogram, "histogram").endswith("_seconds"):
        raise ValidationError(
            f"timed() records seconds, so the histogram name must end in '_seconds'; got {histogram!r}",
            field="name",
        )
    return Timed(resolve=_NamedTarget(histogram, labels))


class _NamedTarget:
    """Finds a histogram by name in the current default registry, caching it until the registry changes."""

    __slots__ = ("_cache", "_labels", "_name")

    def __init__(self, name: str, labels: Mapping[str, object]) -> None:
        self._name = name
        self._labels = dict(labels)
        self._cache: tuple[MetricsRegistry, TimedTarget] | None = None

    def __call__(self) -> TimedTarget:
        registry = get_container().resolve(MetricsRegistry)  # get_metrics(), one call less on the hot path
        cache = self._cache
        if cache is not None and cache[0] is registry:
            return cache[1]
        family = registry.get(self._name)
        if family is None:
            description = f"Seconds spent in {self._name.removeprefix('buttress_')} (declared by timed())."
            family = registry.histogram(self._name, description, labels=tuple(sorted(self._labels)))
        if not isinstance(family, Histogram):
            raise ConflictError(
                f"timed() needs a histogram, but {self._name} is {describe(family.spec)}",
                context={"metric": self._name},
            )
        target = timed_target(family, self._labels)
        self._cache = (registry, target)
        return target


# --- the process-wide registry ------------------------------------------------------------------------------


def get_metrics() -> MetricsRegistry:
    """The process-wide registry: the default container's :class:`MetricsRegistry`, built on first use."""
    return get_container().resolve(MetricsRegistry)


def reset_metrics(registry: MetricsRegistry | None = None) -> None:
    """For tests: forget the process-wide registry (the next :func:`get_metrics` builds a fresh one), or
    install ``registry`` (one on a FakeClock, say) in the default container. In multiprocess mode
    counters live in the directory's files and are not reset."""
    container = get_container()
    container.reset(MetricsRegistry)
    if registry is not None:
        container.replace(MetricsRegistry, registry)


# --- multiprocess mode ------------------------------------------------------------------------------------

_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _multiprocess_dir() -> str | None:
    path = os.environ.get(_ENV) or None
    if path is None:
        return None
    if not os.path.isdir(path):
        raise ConfigError(
            "Prometheus multiprocess mode is on, but its directory is missing",
            problems=[ConfigProblem(_ENV, path, "an existing directory, emptied when the service starts")],
        )
    if not getattr(_prometheus_values.ValueClass, "_multiprocess", False):
        raise ConfigError(
            f"{_ENV} was set after prometheus_client was imported, so this process keeps its metrics in "
            "memory where other processes cannot aggregate them; set it in the environment that starts the "
            "service (shell, systemd unit, container), not from Python",
            problems=[ConfigProblem(_ENV, path, "set before Python starts")],
        )
    return path


def _render_multiprocess(path: str) -> bytes:
    aggregate = CollectorRegistry()
    _multiprocess.MultiProcessCollector(aggregate, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(aggregate)


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """Tell multiprocess mode that worker ``pid`` exited, so ``live*`` gauges drop its values.

    Call it from the process manager's exit hook (gunicorn: ``child_exit``). A no-op when multiprocess
    mode is off.
    """
    path = path or os.environ.get(_ENV)
    if path:
        _multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def clear_multiprocess_dir(path: str | None = None) -> int:
    """Delete the ``*.db`` files of multiprocess mode; call it once when the service starts, before workers.

    Returns how many files were removed. Stale files would make counters resume from an earlier run.
    """
    path = path or os.environ.get(_ENV)
    if not path:
        return 0
    files = glob.glob(os.path.join(glob.escape(path), "*.db"))
    for file in files:
        os.remove(file)
    return len(files)
