"""SystemSampler: real psutil readings, the background thread, thresholds as health results."""

from __future__ import annotations

import json
import os
import resource
import threading
from pathlib import Path
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.observe.health import HealthRegistry
from buttress.observe.system import (
    DiskSample,
    SystemSample,
    SystemSampler,
    SystemThresholds,
    default_fds_warn,
    fds_warn_for,
)


def _sample(
    *,
    memory: float = 40.0,
    cpu: float = 10.0,
    disks: tuple[DiskSample, ...] = (DiskSample("/", 50.0, 10 * 2**30, 20 * 2**30),),
    fds: int | None = 12,
) -> SystemSample:
    return SystemSample(
        time=1_700_000_000.0,
        process_cpu_percent=5.0,
        system_cpu_percent=cpu,
        process_rss_bytes=50 * 2**20,
        memory_percent=memory,
        disks=disks,
        open_fds=fds,
    )


# -- sampling -----------------------------------------------------------------------------------


def test_sample_reads_the_process_and_the_host(tmp_path: Path) -> None:
    clock = FakeClock(start_time=1_700_000_000.0)
    sampler = SystemSampler(paths=("/", str(tmp_path)), clock=clock)
    sum(i * i for i in range(200_000))  # some CPU work between the baseline and the sample
    sample = sampler.sample()
    assert sample.time == 1_700_000_000.0
    assert sample.process_rss_bytes > 1_000_000
    assert 0 < sample.memory_percent < 100
    assert 0 <= sample.system_cpu_percent <= 100
    assert sample.process_cpu_percent >= 0
    assert sample.open_fds is not None
    assert sample.open_fds == len(os.listdir("/proc/self/fd")) or sample.open_fds > 2
    assert [d.path for d in sample.disks] == ["/", str(tmp_path)]
    for disk in sample.disks:
        assert disk.error is None
        assert disk.used_percent is not None
        assert 0 <= disk.used_percent <= 100
        assert disk.free_bytes is not None
        assert disk.total_bytes is not None
        assert 0 < disk.free_bytes <= disk.total_bytes
    assert sampler.latest is None  # sample() neither stores nor publishes


def test_a_missing_path_is_reported_in_the_sample_not_raised(tmp_path: Path) -> None:
    sample = SystemSampler(paths=str(tmp_path / "gone")).sample()
    (disk,) = sample.disks
    assert (disk.used_percent, disk.free_bytes, disk.total_bytes) == (None, None, None)
    assert disk.error is not None
    assert disk.error.startswith("FileNotFoundError: ")


def test_sample_to_dict_is_json_ready() -> None:
    data = _sample().to_dict()
    assert data["time"] == "2023-11-14T22:13:20.000Z"
    assert data["timestamp"] == 1_700_000_000.0
    assert data["disks"] == [
        {
            "path": "/",
            "used_percent": 50.0,
            "free_bytes": 10 * 2**30,
            "total_bytes": 20 * 2**30,
            "error": None,
        }
    ]
    assert data["open_fds"] == 12
    json.dumps(data)


def test_run_once_stores_and_publishes_the_sample() -> None:
    seen: list[SystemSample] = []
    sampler = SystemSampler(on_sample=seen.append)
    sample = sampler.run_once()
    assert seen == [sample]
    assert sampler.latest is sample


def test_a_failing_callback_is_logged_and_the_sample_kept(caplog: pytest.LogCaptureFixture) -> None:
    def broken(sample: SystemSample) -> None:
        raise RuntimeError("metrics are down")

    sampler = SystemSampler(on_sample=broken)
    sample = sampler.run_once()
    assert sampler.latest is sample
    assert "on_sample callback failed" in caplog.text
    assert "metrics are down" in caplog.text


# -- the background thread ----------------------------------------------------------------------


def test_start_samples_at_once_and_stop_wakes_the_thread() -> None:
    first = threading.Event()
    sampler = SystemSampler(interval=3600, on_sample=lambda s: first.set())
    sampler.start()
    try:
        assert first.wait(10), "the thread takes its first sample right away"
        assert sampler.running
        thread = next(t for t in threading.enumerate() if t.name == "buttress-system-sampler")
        assert thread.daemon
        sampler.start()  # idempotent: still one thread
        assert [t.name for t in threading.enumerate()].count("buttress-system-sampler") == 1
    finally:
        sampler.stop(timeout=10)  # an hour-long interval: only the event wakes it
    assert not thread.is_alive()
    assert not sampler.running
    assert sampler.latest is not None
    sampler.stop()  # stopping twice is harmless


def test_the_sampler_is_a_context_manager_and_can_restart() -> None:
    samples = threading.Semaphore(0)
    sampler = SystemSampler(interval=3600, on_sample=lambda s: samples.release())
    with sampler:
        assert samples.acquire(timeout=10)
    assert not sampler.running
    with sampler:
        assert samples.acquire(timeout=10)
    assert not sampler.running


def test_the_loop_survives_a_failing_sample(caplog: pytest.LogCaptureFixture) -> None:
    attempts = threading.Event()

    class Flaky(SystemSampler):
        def sample(self) -> SystemSample:
            attempts.set()
            raise OSError("procfs unavailable")

    sampler = Flaky(interval=3600)
    sampler.start()
    try:
        assert attempts.wait(10)
    finally:
        sampler.stop(timeout=10)
    assert sampler.latest is None
    assert "sampling failed" in caplog.text


def test_stop_from_the_callback_ends_the_thread_without_joining_itself() -> None:
    done = threading.Event()
    holder: dict[str, SystemSampler] = {}

    def stop_now(sample: SystemSample) -> None:
        holder["sampler"].stop()
        done.set()

    sampler = SystemSampler(interval=3600, on_sample=stop_now)
    holder["sampler"] = sampler
    sampler.start()
    thread = next(t for t in threading.enumerate() if t.name == "buttress-system-sampler")
    assert done.wait(10)
    thread.join(10)
    assert not thread.is_alive()


def test_stop_before_start_does_nothing() -> None:
    sampler = SystemSampler()
    sampler.stop()
    assert not sampler.running
    assert repr(sampler) == "SystemSampler(interval=15.0, paths=('/',), running=False)"


# -- thresholds ---------------------------------------------------------------------------------


def test_a_calm_sample_passes_with_a_summary() -> None:
    result = SystemThresholds(fds_warn=1000).evaluate(_sample())
    assert result.status == "pass"
    assert result.output == "cpu 10.0%, memory 40.0% used, disk / 50.0% used, 12 open fds"


@pytest.mark.parametrize(
    ("sample", "status", "output"),
    [
        (_sample(memory=96.0), "fail", "memory used 96.0% >= memory_fail=95%"),
        (_sample(memory=91.5), "warn", "memory used 91.5% >= memory_warn=90%"),
        (
            _sample(disks=(DiskSample("/data", 97.0, 1, 100),)),
            "fail",
            "disk /data used 97.0% >= disk_fail=95%",
        ),
        (
            _sample(disks=(DiskSample("/data", 92.0, 1, 100),)),
            "warn",
            "disk /data used 92.0% >= disk_warn=90%",
        ),
        (
            _sample(disks=(DiskSample("/mnt", None, None, None, "FileNotFoundError: /mnt"),)),
            "warn",
            "disk /mnt unreadable: FileNotFoundError: /mnt",
        ),
        (_sample(cpu=99.0), "warn", "cpu 99.0% >= cpu_warn=90%"),
        (_sample(fds=900), "warn", "open file descriptors 900 >= fds_warn=800"),
        (
            _sample(memory=99.0, cpu=95.0, fds=801),
            "fail",
            (
                "memory used 99.0% >= memory_fail=95%; cpu 95.0% >= cpu_warn=90%; "
                "open file descriptors 801 >= fds_warn=800"
            ),
        ),
    ],
)
def test_crossed_thresholds_are_named_with_the_value(sample: SystemSample, status: str, output: str) -> None:
    result = SystemThresholds(fds_warn=800).evaluate(sample)
    assert (result.status, result.output) == (status, output)


def test_none_turns_thresholds_off() -> None:
    off = SystemThresholds(
        memory_warn=None, memory_fail=None, disk_warn=None, disk_fail=None, cpu_warn=None, fds_warn=None
    )
    sample = _sample(memory=100.0, cpu=100.0, fds=None, disks=(DiskSample("/", 100.0, 0, 1),))
    assert off.evaluate(sample).status == "pass"
    assert off.evaluate(sample).output == "cpu 100.0%, memory 100.0% used, disk / 100.0% used"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"memory_warn": 101}, "memory_warn"),
        ({"disk_fail": -1}, "disk_fail"),
        ({"cpu_warn": True}, "cpu_warn"),
        ({"memory_warn": 90, "memory_fail": 80}, "memory_fail"),
        ({"disk_warn": 95, "disk_fail": 90}, "disk_fail"),
        ({"fds_warn": 0}, "fds_warn"),
        ({"fds_warn": 1.5}, "fds_warn"),
    ],
)
def test_threshold_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SystemThresholds(**kwargs)
    assert info.value.field == field


def test_default_fds_warn_is_80_percent_of_the_open_file_limit() -> None:
    assert fds_warn_for(1024, resource.RLIM_INFINITY) == 819
    assert fds_warn_for(1, resource.RLIM_INFINITY) == 1
    assert fds_warn_for(resource.RLIM_INFINITY, resource.RLIM_INFINITY) is None
    assert fds_warn_for(0, resource.RLIM_INFINITY) is None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert default_fds_warn() == fds_warn_for(soft, resource.RLIM_INFINITY)
    assert SystemThresholds().fds_warn == default_fds_warn()


# -- health check and snapshot ------------------------------------------------------------------


def test_health_check_samples_on_the_spot_when_not_running() -> None:
    seen: list[SystemSample] = []
    sampler = SystemSampler(
        thresholds=SystemThresholds(memory_warn=0, memory_fail=100, cpu_warn=None, fds_warn=None),
        on_sample=seen.append,
    )
    result = sampler.health_check()()
    assert result.status == "warn"
    assert result.output.startswith("memory used ")
    assert result.output.endswith("% >= memory_warn=0%")
    assert len(seen) == 1
    assert sampler.latest is seen[0]


def test_health_check_uses_the_fresh_latest_sample_while_running() -> None:
    clock = FakeClock()
    samples = threading.Semaphore(0)
    count: list[SystemSample] = []

    def record(sample: SystemSample) -> None:
        count.append(sample)
        samples.release()

    sampler = SystemSampler(interval=60, clock=clock, on_sample=record)
    check = sampler.health_check()
    with sampler:
        assert samples.acquire(timeout=10)
        check()
        assert len(count) == 1  # fresh: no new sample
        clock.advance(121)  # older than two intervals: the thread looks stuck, so sample again
        check()
        assert len(count) == 2


def test_health_check_in_a_registry() -> None:
    sampler = SystemSampler(thresholds=SystemThresholds(memory_fail=0, memory_warn=0))
    registry = HealthRegistry()
    registry.add("system", sampler.health_check(), critical=False, component_type="system")
    report = registry.run_sync()
    assert report["system"].status == "fail"
    assert report.status == "warn"


def test_snapshot_is_json_ready() -> None:
    sampler = SystemSampler(interval=30, paths="/", thresholds=SystemThresholds(fds_warn=100))
    before = sampler.snapshot()
    assert before == {
        "running": False,
        "interval": 30.0,
        "paths": ["/"],
        "thresholds": {
            "memory_warn": 90.0,
            "memory_fail": 95.0,
            "disk_warn": 90.0,
            "disk_fail": 95.0,
            "cpu_warn": 90.0,
            "fds_warn": 100,
        },
        "latest": None,
    }
    sampler.run_once()
    after = json.loads(json.dumps(sampler.snapshot()))
    assert after["latest"]["disks"][0]["path"] == "/"
    assert set(after["latest"]) == {
        "time",
        "timestamp",
        "process_cpu_percent",
        "system_cpu_percent",
        "process_rss_bytes",
        "memory_percent",
        "disks",
        "open_fds",
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"interval": 0}, "interval"),
        ({"interval": -5}, "interval"),
        ({"interval": float("inf")}, "interval"),
        ({"interval": True}, "interval"),
        ({"paths": ()}, "paths"),
        ({"paths": ("/", "")}, "paths"),
        ({"on_sample": "print"}, "on_sample"),
    ],
)
def test_sampler_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SystemSampler(**kwargs)
    assert info.value.field == field
