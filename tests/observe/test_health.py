"""HealthRegistry: registration, concurrent runs with per-check timeouts, aggregation and health+json."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.observe.health import (
    HEALTH_CONTENT_TYPE,
    CheckResult,
    HealthCheck,
    HealthRegistry,
    aggregate_status,
    describe_exception,
    rfc3339,
)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event hanging checks wait on; set at teardown so no thread outlives the test for long."""
    event = threading.Event()
    yield event
    event.set()


def _join_check_thread(name: str) -> None:
    for thread in threading.enumerate():
        if thread.name == f"buttress-health-{name}":
            thread.join(5)
            assert not thread.is_alive()


# -- registration -------------------------------------------------------------------------------


def test_add_and_decorator_register_checks_with_their_options() -> None:
    registry = HealthRegistry()

    def ping() -> None:
        return None

    check = registry.add("ping", ping, critical=False, timeout=0.5, groups=("liveness", "readiness"))
    assert check == registry.get("ping")
    assert (check.critical, check.timeout, check.groups) == (False, 0.5, frozenset({"liveness", "readiness"}))

    @registry.check("cache", component_type="datastore", measurement="responseTime", observed_unit="ms")
    async def cache() -> None:
        return None

    assert cache.__name__ == "cache"  # the decorator returns the function unchanged
    assert registry.get("cache") is not None
    assert registry.get("cache").key == "cache:responseTime"  # type: ignore[union-attr]
    assert registry.get("cache").is_async  # type: ignore[union-attr]
    assert not check.is_async
    assert [c.name for c in registry] == ["ping", "cache"]
    assert len(registry) == 2
    assert "ping" in registry
    assert "nope" not in registry
    assert registry.get("ping").groups == frozenset({"liveness", "readiness"})  # type: ignore[union-attr]
    assert HealthCheck("x", ping).groups == frozenset({"readiness"})


def test_duplicate_name_is_refused_naming_the_field() -> None:
    registry = HealthRegistry()
    registry.add("redis", lambda: None)
    with pytest.raises(ValidationError, match="'redis' is already registered") as info:
        registry.add("redis", lambda: None)
    assert info.value.field == "name"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "  "}, "name"),
        ({"name": "redis:ping"}, "name"),
        ({"measurement": "a:b"}, "measurement"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"groups": ()}, "groups"),
        ({"groups": ("readiness", "")}, "groups"),
        ({"fn": 42}, "fn"),
    ],
)
def test_invalid_check_definitions_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"name": "check", "fn": lambda: None, **kwargs}
    registry = HealthRegistry()
    with pytest.raises(ValidationError) as info:
        registry.add(arguments.pop("name"), arguments.pop("fn"), **arguments)
    assert info.value.field == field


def test_a_single_group_may_be_given_as_a_string() -> None:
    registry = HealthRegistry()
    assert registry.add("live", lambda: None, groups="liveness").groups == frozenset({"liveness"})


def test_register_takes_only_health_checks_and_remove_takes_them_out() -> None:
    registry = HealthRegistry()
    with pytest.raises(ValidationError) as info:
        registry.register(lambda: None)  # type: ignore[arg-type]
    assert info.value.field == "check"
    check = registry.register(HealthCheck("a", lambda: None))
    assert registry.remove("a") is check
    assert len(registry) == 0
    with pytest.raises(KeyError):
        registry.remove("a")


def test_check_result_refuses_an_unknown_status() -> None:
    with pytest.raises(ValidationError, match="pass, warn, fail") as info:
        CheckResult("ok")  # type: ignore[arg-type]
    assert info.value.field == "status"


def test_close_calls_every_close_even_when_one_fails() -> None:
    closed: list[str] = []

    def broken() -> None:
        raise RuntimeError("cannot close")

    registry = HealthRegistry()
    registry.register(HealthCheck("a", lambda: None, close=broken))
    registry.register(HealthCheck("b", lambda: None, close=lambda: closed.append("b")))
    registry.register(HealthCheck("c", lambda: None))
    registry.close()
    assert closed == ["b"]


# -- concurrency and timeouts -------------------------------------------------------------------


async def test_sync_checks_run_concurrently() -> None:
    # Ten threads meet at a barrier: they can only all pass if all ten run at the same time
    # (more than the default executor has workers on a small host).
    barrier = threading.Barrier(10, timeout=5)
    registry = HealthRegistry()

    def meet() -> None:
        barrier.wait()  # raises BrokenBarrierError after 5 s if the ten are not together

    for i in range(10):
        registry.add(f"sync{i}", meet, timeout=10)
    report = await registry.run()
    assert [o.status for o in report.checks] == ["pass"] * 10
    assert report.status == "pass"


async def test_async_checks_run_concurrently() -> None:
    barrier = asyncio.Barrier(10)
    registry = HealthRegistry()

    async def meet() -> None:
        async with asyncio.timeout(5):
            await barrier.wait()

    for i in range(10):
        registry.add(f"async{i}", meet, timeout=10)
    report = await registry.run()
    assert report.status == "pass"
    assert len(report.checks) == 10


async def test_a_hanging_async_check_fails_at_its_timeout_while_others_pass() -> None:
    never = asyncio.Event()
    registry = HealthRegistry()
    registry.add("hangs", never.wait, timeout=0.2)
    registry.add("fine", lambda: None)

    async def also_fine() -> CheckResult:
        return CheckResult("pass", "ok")

    registry.add("fine-async", also_fine)
    report = await registry.run()
    assert report["hangs"].status == "fail"
    assert report["hangs"].output == "timed out after 0.2s"
    assert report["fine"].status == "pass"
    assert report["fine-async"].status == "pass"
    assert report.status == "fail"


async def test_a_hanging_sync_thread_is_abandoned_at_its_timeout(release: threading.Event) -> None:
    async def later() -> None:
        return None

    def stuck_then_coroutine() -> object:
        release.wait()
        return later()  # delivered too late: it must be closed, not left "never awaited"

    registry = HealthRegistry()
    registry.add("stuck", release.wait, timeout=0.2)
    registry.add("stuck-coro", stuck_then_coroutine, timeout=0.2)
    registry.add("fine", lambda: True)
    report = await registry.run()
    assert report["stuck"].status == "fail"
    assert report["stuck"].output == "timed out after 0.2s"
    assert report["stuck-coro"].output == "timed out after 0.2s"
    assert report["fine"].status == "pass"
    release.set()  # the abandoned threads now deliver to futures that are already settled
    await asyncio.to_thread(_join_check_thread, "stuck")
    await asyncio.to_thread(_join_check_thread, "stuck-coro")
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()


def test_an_abandoned_thread_finishing_after_the_loop_closed_is_harmless(release: threading.Event) -> None:
    async def later() -> None:
        return None

    def stuck_then_coroutine() -> object:
        release.wait()
        return later()  # handed to a closed loop: it must be closed, not left "never awaited"

    registry = HealthRegistry()
    registry.add("stuck", release.wait, timeout=0.1)
    registry.add("stuck-coro", stuck_then_coroutine, timeout=0.1)
    report = registry.run_sync()
    assert report.status == "fail"
    release.set()
    _join_check_thread("stuck")
    _join_check_thread("stuck-coro")
    gc.collect()


async def test_a_check_that_swallows_cancellation_does_not_hang_the_runner(
    caplog: pytest.LogCaptureFixture,
) -> None:
    finished = asyncio.Event()
    let_go = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await let_go.wait()  # ignores the cancellation for a while, then fails
            finished.set()
            raise ValueError("late failure") from None

    registry = HealthRegistry()
    registry.add("stubborn", stubborn, timeout=0.1)
    report = await registry.run()
    assert report["stubborn"].output == "timed out after 0.1s"
    let_go.set()
    await finished.wait()
    await asyncio.sleep(0)
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_cancelling_a_run_cancels_its_checks() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def waits() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    registry = HealthRegistry()
    registry.add("waits", waits, timeout=30)
    task = asyncio.create_task(registry.run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(cancelled.wait(), 5)


# -- what checks return -------------------------------------------------------------------------


class _Opaque:
    def __str__(self) -> str:
        return "opaque"


async def test_return_values_are_interpreted_and_garbage_is_a_failure() -> None:
    registry = HealthRegistry()
    registry.add("none", lambda: None)
    registry.add("true", lambda: True)
    registry.add("false", lambda: False)
    registry.add("int", lambda: 42)
    registry.add("str", lambda: "ok")
    registry.add("dict", lambda: {"status": "pass"})
    registry.add("warn", lambda: CheckResult("warn", "slow", 1.5, "s"))

    async def async_garbage() -> object:
        return object()

    registry.add("async-garbage", async_garbage)
    report = await registry.run()
    statuses = {o.name: o.status for o in report.checks}
    assert statuses == {
        "none": "pass",
        "true": "pass",
        "false": "fail",
        "int": "fail",
        "str": "fail",
        "dict": "fail",
        "warn": "warn",
        "async-garbage": "fail",
    }
    assert report["false"].output == "check returned False"
    assert report["int"].output == "check returned an unsupported int; return None, a bool or a CheckResult"
    assert report["async-garbage"].output.startswith("check returned an unsupported object")
    assert report.status == "fail"


async def test_a_raising_check_fails_with_type_and_message_and_no_traceback() -> None:
    registry = HealthRegistry()

    def sync_boom() -> None:
        raise ValueError("boom\n  on two lines")

    async def async_boom() -> None:
        raise ConnectionError("refused")

    def silent() -> None:
        raise KeyError

    def exits() -> None:
        raise SystemExit(3)

    def own_timeout() -> None:
        raise TimeoutError("connect to 10.0.0.1:5432 timed out")

    registry.add("sync", sync_boom)
    registry.add("async", async_boom)
    registry.add("silent", silent)
    registry.add("exits", exits)
    registry.add("own-timeout", own_timeout)
    registry.add("needs-args", lambda x: x)
    report = await registry.run()
    assert report["sync"].output == "ValueError: boom on two lines"
    assert report["async"].output == "ConnectionError: refused"
    assert report["silent"].output == "KeyError"
    assert report["exits"].output == "SystemExit: 3"
    assert report["own-timeout"].output == "TimeoutError: connect to 10.0.0.1:5432 timed out"
    assert report["needs-args"].output.startswith("TypeError: ")
    assert all(o.status == "fail" for o in report.checks)
    assert "Traceback" not in report.to_json()


async def test_a_check_that_builds_a_bad_result_is_a_failed_check() -> None:
    registry = HealthRegistry()
    registry.add("bad", lambda: CheckResult("fine"))  # type: ignore[arg-type]
    report = await registry.run()
    assert report["bad"].status == "fail"
    assert report["bad"].output.startswith(
        "ValidationError: CheckResult status must be one of pass, warn, fail"
    )


async def test_a_sync_callable_returning_a_coroutine_is_awaited() -> None:
    async def real() -> CheckResult:
        return CheckResult("warn", "from the coroutine")

    registry = HealthRegistry()
    registry.add("partial", lambda: real())  # noqa: PLW0108 - a sync callable, on purpose
    report = await registry.run()
    assert report["partial"].status == "warn"
    assert report["partial"].output == "from the coroutine"


async def test_an_async_callable_object_runs_on_the_loop() -> None:
    class Probe:
        def __init__(self) -> None:
            self.thread: threading.Thread | None = None

        async def __call__(self) -> None:
            self.thread = threading.current_thread()

    probe = Probe()
    registry = HealthRegistry()
    assert registry.add("probe", probe).is_async
    await registry.run()
    assert probe.thread is threading.current_thread()


async def test_observed_values_are_made_json_safe_and_outputs_clipped() -> None:
    registry = HealthRegistry()
    registry.add("nan", lambda: CheckResult("pass", observed_value=float("nan")))
    registry.add("object", lambda: CheckResult("pass", observed_value=_Opaque()))
    registry.add("nested", lambda: CheckResult("pass", observed_value={"a": (1, 2.5, float("inf"))}))
    registry.add("long", lambda: CheckResult("warn", "x" * 5000))
    registry.add("unit", lambda: CheckResult("pass", observed_value=3), observed_unit="jobs")
    report = await registry.run()
    assert report["nan"].observed_value is None
    assert report["object"].observed_value == "opaque"
    assert report["nested"].observed_value == {"a": [1, 2.5, None]}
    assert len(report["long"].output) == 1000
    assert report["long"].output.endswith("…")
    assert report["unit"].observed_unit == "jobs"
    json.loads(report.to_json())
    with pytest.raises(KeyError):
        report["missing"]


def test_describe_exception_clips_long_messages() -> None:
    text = describe_exception(RuntimeError("y" * 2000))
    assert text.startswith("RuntimeError: yyy")
    assert len(text) == 1000


# -- groups -------------------------------------------------------------------------------------


async def test_groups_select_checks() -> None:
    registry = HealthRegistry()
    registry.add("live", lambda: None, groups=("liveness",))
    registry.add("ready", lambda: None)
    registry.add("both", lambda: None, groups=("liveness", "readiness"))
    registry.add("warmup", lambda: None, groups=("startup", "cache-warm"))
    assert registry.groups == {"liveness", "readiness", "startup", "cache-warm"}
    assert [o.name for o in (await registry.run("liveness")).checks] == ["live", "both"]
    assert [o.name for o in (await registry.run("readiness")).checks] == ["ready", "both"]
    assert [o.name for o in (await registry.run("cache-warm")).checks] == ["warmup"]
    everything = await registry.run()
    assert [o.name for o in everything.checks] == ["live", "ready", "both", "warmup"]
    assert everything.group is None
    assert (await registry.run("startup")).group == "startup"


async def test_an_empty_standard_group_passes_and_an_unknown_group_is_an_error() -> None:
    registry = HealthRegistry()
    report = await registry.run("liveness")
    assert report.status == "pass"
    assert report.checks == ()
    assert report.to_dict() == {"status": "pass", "checks": {}}
    with pytest.raises(ValidationError, match="unknown health check group 'readyness'") as info:
        await registry.run("readyness")
    assert info.value.field == "group"


# -- aggregation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("critical", "status", "overall", "http"),
    [
        (True, "pass", "pass", 200),
        (True, "warn", "warn", 200),
        (True, "fail", "fail", 503),
        (False, "pass", "pass", 200),
        (False, "warn", "warn", 200),
        (False, "fail", "warn", 200),
    ],
)
async def test_status_aggregation_table(critical: bool, status: str, overall: str, http: int) -> None:
    registry = HealthRegistry()
    registry.add("other", lambda: None)
    registry.add("subject", lambda: CheckResult(status, "why"), critical=critical)  # type: ignore[arg-type]
    report = await registry.run()
    assert report["subject"].status == status  # the check keeps its own status
    assert report.status == overall
    assert report.http_status == http


@pytest.mark.parametrize(
    ("entries", "overall"),
    [
        ([], "pass"),
        ([(False, "fail"), (True, "warn")], "warn"),
        ([(False, "fail"), (True, "fail")], "fail"),
        ([(True, "warn"), (True, "fail"), (False, "pass")], "fail"),
        ([(False, "warn"), (False, "fail")], "warn"),
    ],
)
async def test_aggregation_of_mixed_checks(entries: list[tuple[bool, str]], overall: str) -> None:
    registry = HealthRegistry()
    for i, (critical, status) in enumerate(entries):
        registry.add(f"c{i}", lambda s=status: CheckResult(s), critical=critical)  # type: ignore[misc]
    report = await registry.run()
    assert report.status == overall
    assert aggregate_status(report.checks) == overall
    assert [o.name for o in report.failed_critical] == [
        f"c{i}" for i, (critical, status) in enumerate(entries) if critical and status == "fail"
    ]


# -- the health+json document -------------------------------------------------------------------


async def test_health_json_document_shape() -> None:
    clock = FakeClock(start_time=1_700_000_000.0)
    registry = HealthRegistry(clock=clock, service_id="orders-api", version="1", release_id="1.2.3")

    def redis_ping() -> CheckResult:
        clock.advance(0.012)
        return CheckResult("pass", "PONG", observed_value=0.8, observed_unit="ms")

    def disk() -> CheckResult:
        return CheckResult("warn", "8% free", observed_value=8.0)

    def payments() -> None:
        raise ConnectionError("refused")

    registry.add("redis", redis_ping, component_type="datastore", measurement="responseTime")
    registry.add(
        "disk", disk, critical=False, component_type="system", component_id="/", measurement="utilization",
        observed_unit="percent",
    )  # fmt: skip
    registry.add("payments", payments, component_type="http")
    report = await registry.run()
    time = "2023-11-14T22:13:20.012Z"
    assert rfc3339(1_700_000_000.012) == time
    assert report.to_dict() == {
        "status": "fail",
        "version": "1",
        "releaseId": "1.2.3",
        "serviceId": "orders-api",
        "output": "fail: payments; warn: disk",
        "checks": {
            "redis:responseTime": [
                {
                    "componentType": "datastore",
                    "observedValue": 0.8,
                    "observedUnit": "ms",
                    "status": "pass",
                    "time": time,
                    "duration": "0.012000s",
                    "critical": True,
                }
            ],
            "disk:utilization": [
                {
                    "componentId": "/",
                    "componentType": "system",
                    "observedValue": 8.0,
                    "observedUnit": "percent",
                    "status": "warn",
                    "time": time,
                    "duration": "0.000000s",
                    "critical": False,
                    "output": "8% free",
                }
            ],
            "payments": [
                {
                    "componentType": "http",
                    "status": "fail",
                    "time": time,
                    "duration": "0.000000s",
                    "critical": True,
                    "output": "ConnectionError: refused",
                }
            ],
        },
    }
    assert report.http_status == 503
    assert HEALTH_CONTENT_TYPE == "application/health+json"
    assert json.loads(report.to_json(indent=2)) == report.to_dict()
    assert report["redis"].duration == pytest.approx(0.012)
    assert report.time == clock.time()


async def test_description_is_reported_and_a_warn_document_names_warning_checks() -> None:
    registry = HealthRegistry(description="checkout service")
    registry.add("slow", lambda: CheckResult("warn", "p99 high"))
    document = (await registry.run()).to_dict()
    assert document["description"] == "checkout service"
    assert document["status"] == "warn"
    assert document["output"] == "warn: slow"


# -- run_sync -----------------------------------------------------------------------------------


def test_run_sync_without_a_loop() -> None:
    registry = HealthRegistry()
    registry.add("a", lambda: None)

    async def b() -> bool:
        return True

    registry.add("b", b)
    report = registry.run_sync()
    assert report.status == "pass"
    assert [o.name for o in report.checks] == ["a", "b"]


async def test_run_sync_inside_a_running_loop_uses_a_helper_thread() -> None:
    registry = HealthRegistry()
    seen: list[str] = []

    async def where() -> None:
        seen.append(threading.current_thread().name)

    registry.add("where", where)
    report = registry.run_sync("readiness")
    assert report.status == "pass"
    assert seen == ["buttress-health-run"]


def test_run_sync_with_an_unknown_group_raises_in_the_caller() -> None:
    with pytest.raises(ValidationError):
        HealthRegistry().run_sync("nope")


def test_runner_does_not_log_errors_for_failed_checks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    registry = HealthRegistry()
    registry.add("boom", lambda: 1 / 0)
    assert registry.run_sync().status == "fail"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
