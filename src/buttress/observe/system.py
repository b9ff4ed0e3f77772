"""Process and host resource sampling (CPU, memory, disk, file descriptors) with health thresholds.

:class:`SystemSampler` reads psutil every ``interval`` seconds on a daemon thread and hands each
:class:`SystemSample` to ``on_sample`` (the place to set gauges), keeps the latest for the ops server
(:meth:`SystemSampler.snapshot`), and turns :class:`SystemThresholds` into a health check
(:meth:`SystemSampler.health_check`). Sampling is cheap (no blocking CPU interval): CPU percentages
are computed between two consecutive samples, so the first one after construction covers the time
since the sampler was created.

Percentages follow psutil: ``process_cpu_percent`` may exceed 100 for a process busy on several cores;
``system_cpu_percent`` is the whole host, 0-100; ``used_percent`` of a disk is what ``df`` shows.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.health_types import CheckResult, describe_exception
from buttress.observe._health_core import rfc3339

__all__ = [
    "DiskSample",
    "SystemSample",
    "SystemSampler",
    "SystemThresholds",
    "default_fds_warn",
]

logger = logging.getLogger(__name__)


def fds_warn_for(soft_limit: int, infinity: int) -> int | None:
    """80% of the soft ``RLIMIT_NOFILE``: warn well before ``accept()`` starts failing with EMFILE."""
    if soft_limit == infinity or soft_limit <= 0:
        return None
    return max(1, int(soft_limit * 0.8))


def default_fds_warn() -> int | None:
    """The default ``fds_warn``: 80% of this process's open-file limit, or ``None`` where unknown."""
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows has no RLIMIT_NOFILE
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return fds_warn_for(soft, resource.RLIM_INFINITY)


@dataclass(frozen=True, slots=True)
class DiskSample:
    """Usage of the filesystem holding ``path``; ``error`` says why the numbers are missing."""

    path: str
    used_percent: float | None
    free_bytes: int | None
    total_bytes: int | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One reading of the process and the host; ``time`` is wall-clock epoch seconds."""

    time: float
    process_cpu_percent: float
    system_cpu_percent: float
    process_rss_bytes: int
    memory_percent: float
    disks: tuple[DiskSample, ...]
    open_fds: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``time`` as RFC 3339 and ``timestamp`` as epoch seconds."""
        data = asdict(self)
        data["disks"] = list(data["disks"])
        data["timestamp"] = self.time
        data["time"] = rfc3339(self.time)
        return data


def _check_percent(value: float | None, field_name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValidationError(
            f"{field_name} is a percentage from 0 to 100 or None, got {value!r}", field=field_name
        )


@dataclass(frozen=True, slots=True)
class SystemThresholds:
    """Where a reading becomes a health warning or failure; ``None`` turns a threshold off.

    Memory and disk thresholds are used percentages; ``cpu_warn`` applies to the host CPU (busy CPU
    alone never fails a service); ``fds_warn`` is a count of open file descriptors.
    """

    memory_warn: float | None = 90.0
    memory_fail: float | None = 95.0
    disk_warn: float | None = 90.0
    disk_fail: float | None = 95.0
    cpu_warn: float | None = 90.0
    fds_warn: int | None = field(default_factory=default_fds_warn)

    def __post_init__(self) -> None:
        for name in ("memory_warn", "memory_fail", "disk_warn", "disk_fail", "cpu_warn"):
            _check_percent(getattr(self, name), name)
        for warn, fail in (("memory_warn", "memory_fail"), ("disk_warn", "disk_fail")):
            warn_value, fail_value = getattr(self, warn), getattr(self, fail)
            if warn_value is not None and fail_value is not None and fail_value < warn_value:
                raise ValidationError(
                    f"{fail} ({fail_value!r}) must not be below {warn} ({warn_value!r})", field=fail
                )
        if self.fds_warn is not None and (
            isinstance(self.fds_warn, bool) or not isinstance(self.fds_warn, int) or self.fds_warn < 1
        ):
            raise ValidationError(
                f"fds_warn is a count >= 1 or None, got {self.fds_warn!r}", field="fds_warn"
            )

    def evaluate(self, sample: SystemSample) -> CheckResult:
        """Compare a sample with the thresholds; the output names every threshold crossed and the value."""
        failures: list[str] = []
        warnings: list[str] = []

        def crossed(
            value: float, warn: float | None, fail: float | None, what: str, names: tuple[str, str]
        ) -> None:
            if fail is not None and value >= fail:
                failures.append(f"{what} {value:.1f}% >= {names[1]}={fail:g}%")
            elif warn is not None and value >= warn:
                warnings.append(f"{what} {value:.1f}% >= {names[0]}={warn:g}%")

        crossed(
            sample.memory_percent,
            self.memory_warn,
            self.memory_fail,
            "memory used",
            ("memory_warn", "memory_fail"),
        )
        for disk in sample.disks:
            if disk.used_percent is None:
                warnings.append(f"disk {disk.path} unreadable: {disk.error}")
                continue
            crossed(
                disk.used_percent,
                self.disk_warn,
                self.disk_fail,
                f"disk {disk.path} used",
                ("disk_warn", "disk_fail"),
            )
        crossed(sample.system_cpu_percent, self.cpu_warn, None, "cpu", ("cpu_warn", ""))
        if self.fds_warn is not None and sample.open_fds is not None and sample.open_fds >= self.fds_warn:
            warnings.append(f"open file descriptors {sample.open_fds} >= fds_warn={self.fds_warn}")
        if failures:
            return CheckResult("fail", "; ".join(failures + warnings))
        if warnings:
            return CheckResult("warn", "; ".join(warnings))
        return CheckResult("pass", _summary(sample))


def _summary(sample: SystemSample) -> str:
    parts = [f"cpu {sample.system_cpu_percent:.1f}%", f"memory {sample.memory_percent:.1f}% used"]
    parts += [f"disk {d.path} {d.used_percent:.1f}% used" for d in sample.disks if d.used_percent is not None]
    if sample.open_fds is not None:
        parts.append(f"{sample.open_fds} open fds")
    return ", ".join(parts)


def _busy_and_total(times: Any) -> tuple[float, float]:
    """Busy and total CPU seconds the way psutil counts them (guest time is already in user time)."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class SystemSampler:
    """Samples psutil every ``interval`` seconds on a daemon thread; see the module docstring.

    System CPU is computed from this sampler's own ``cpu_times`` deltas rather than
    :func:`psutil.cpu_percent`, whose module-global state any other caller would disturb.
    """

    def __init__(
        self,
        interval: float = 15.0,
        paths: Sequence[str] | str = ("/",),
        *,
        clock: Clock = SYSTEM_CLOCK,
        thresholds: SystemThresholds | None = None,
        on_sample: Callable[[SystemSample], None] | None = None,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not math.isfinite(interval):
            raise ValidationError(
                f"interval must be a finite number of seconds > 0, got {interval!r}", field="interval"
            )
        if interval <= 0:
            raise ValidationError(
                f"interval must be a finite number of seconds > 0, got {interval!r}", field="interval"
            )
        self.paths: tuple[str, ...] = (paths,) if isinstance(paths, str) else tuple(paths)
        if not self.paths or not all(isinstance(p, str) and p for p in self.paths):
            raise ValidationError(f"paths must be one or more filesystem paths, got {paths!r}", field="paths")
        if on_sample is not None and not callable(on_sample):
            raise ValidationError(f"on_sample must be callable or None, got {on_sample!r}", field="on_sample")
        self.interval = float(interval)
        self.clock = clock
        self.thresholds = thresholds if thresholds is not None else SystemThresholds()
        self.on_sample = on_sample
        self._process = psutil.Process()
        self._sample_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._latest: SystemSample | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._process.cpu_percent(None)  # prime both CPU baselines so the first sample means something
        self._cpu_times = _busy_and_total(psutil.cpu_times())

    # -- sampling -----------------------------------------------------------------------------------

    def sample(self) -> SystemSample:
        """Read everything once, synchronously, without storing or publishing the result."""
        with self._sample_lock:
            busy, total = _busy_and_total(psutil.cpu_times())
            last_busy, last_total = self._cpu_times
            self._cpu_times = (busy, total)
            elapsed = total - last_total
            system_cpu = min(max((busy - last_busy) / elapsed * 100.0, 0.0), 100.0) if elapsed > 0 else 0.0
            process_cpu = self._process.cpu_percent(None)
        with self._process.oneshot():
            rss = self._process.memory_info().rss
            open_fds = self._process.num_fds() if hasattr(self._process, "num_fds") else None
        return SystemSample(
            time=self.clock.time(),
            process_cpu_percent=round(process_cpu, 2),
            system_cpu_percent=round(system_cpu, 2),
            process_rss_bytes=rss,
            memory_percent=round(psutil.virtual_memory().percent, 2),
            disks=tuple(_disk(path) for path in self.paths),
            open_fds=open_fds,
        )

    def run_once(self) -> SystemSample:
        """One tick of the background loop: sample, keep as :attr:`latest`, pass to ``on_sample``.

        A failing ``on_sample`` is logged, not raised: metrics trouble must not stop the sampling.
        """
        sample = self.sample()
        with self._state_lock:
            self._latest = sample
        if self.on_sample is not None:
            try:
                self.on_sample(sample)
            except Exception:
                logger.exception("system sampler: on_sample callback failed")
        return sample

    @property
    def latest(self) -> SystemSample | None:
        with self._state_lock:
            return self._latest

    # -- background thread --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Sample now and then every ``interval`` seconds on a daemon thread; a second call does nothing."""
        with self._state_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._loop, args=(self._stop,), name="buttress-system-sampler", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Wake the thread at once and wait up to ``timeout`` seconds for it to finish."""
        with self._state_lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> SystemSampler:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("system sampler: sampling failed; trying again in %ss", self.interval)
            if stop.wait(self.interval):
                return

    # -- health and reporting -----------------------------------------------------------------------

    def health_check(self) -> Callable[[], CheckResult]:
        """A check for :class:`~buttress.observe.health.HealthRegistry` that applies :attr:`thresholds`.

        It reads the latest sample while the thread runs and it is fresh (at most two intervals old),
        else samples on the spot.
        """

        def system_thresholds() -> CheckResult:
            sample = self.latest
            if not self.running or sample is None or self.clock.time() - sample.time > 2 * self.interval:
                sample = self.run_once()
            return self.thresholds.evaluate(sample)

        return system_thresholds

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state for the ops server: configuration and the latest sample (or ``None``)."""
        latest = self.latest
        return {
            "running": self.running,
            "interval": self.interval,
            "paths": list(self.paths),
            "thresholds": asdict(self.thresholds),
            "latest": latest.to_dict() if latest is not None else None,
        }

    def __repr__(self) -> str:
        return f"SystemSampler(interval={self.interval!r}, paths={self.paths!r}, running={self.running})"


def _disk(path: str) -> DiskSample:
    try:
        usage = psutil.disk_usage(path)
    except OSError as exc:  # a missing mount is a reading, not a crash of the sampler
        return DiskSample(path, None, None, None, describe_exception(exc))
    return DiskSample(path, round(usage.percent, 2), usage.free, usage.total)
