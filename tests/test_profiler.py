"""The profiler: switchable recording, wall and CPU statistics, windowed quantiles, reports, threads."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import threading
import types
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.observe import _forwarding as forwarding_module
from buttress.observe import profiler as profiler_module
from buttress.observe.profiler import FunctionStats, Profiler, get_profiler, profile_block, profiled


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(start_monotonic=0.0)


@pytest.fixture
def cpu() -> FakeClock:
    return FakeClock(start_monotonic=0.0)


@pytest.fixture
def prof(wall: FakeClock, cpu: FakeClock) -> Profiler:
    """A running profiler whose wall and CPU time only move when the test says so."""
    return Profiler(enabled=True, timer=wall.monotonic, cpu_timer=cpu.monotonic)


@pytest.fixture
def default_profiler() -> Iterator[Profiler]:
    profiler = get_profiler()
    profiler.reset()
    profiler.start()
    yield profiler
    profiler.stop()
    profiler.reset()


def stats_of(profiler: Profiler, name: str) -> FunctionStats:
    stats = profiler.stats(name)
    assert stats is not None, f"{name} was not recorded"
    return stats


# --- switching ---------------------------------------------------------------------------------------------


def test_a_new_profiler_is_stopped_and_records_nothing() -> None:
    profiler = Profiler()
    assert profiler.enabled is False

    @profiled(name="f", profiler=profiler)
    def f(x: int) -> int:
        return x * 2

    assert f(21) == 42
    with profile_block("block", profiler=profiler):
        pass
    assert profiler.report() == []
    assert profiler.stats("f") is None


def test_enabled_true_records_from_construction(wall: FakeClock) -> None:
    profiler = Profiler(enabled=True, timer=wall.monotonic)

    @profiled(name="f", profiler=profiler)
    def f() -> None:
        wall.advance(0.25)

    f()
    assert profiler.enabled is True
    assert stats_of(profiler, "f").total == 0.25


def test_start_stop_and_reset_at_run_time(prof: Profiler) -> None:
    @profiled(name="f", profiler=prof)
    def f() -> None:
        return None

    prof.stop()
    f()
    assert prof.stats("f") is None
    prof.start()
    prof.start()  # starting twice is harmless
    f()
    f()
    prof.stop()
    f()
    assert stats_of(prof, "f").count == 2, "stopping keeps what was collected and records no more"
    prof.reset()
    assert prof.report() == []
    assert prof.enabled is False, "reset does not switch recording on"
    prof.start()
    prof.reset()
    assert prof.enabled is True, "reset does not switch recording off"


def test_the_default_profiler_is_one_process_wide_instance_used_by_default(
    default_profiler: Profiler,
) -> None:
    assert get_profiler() is default_profiler

    @profiled
    def bare() -> str:
        return "ok"

    @profiled(name="custom.name")
    def named() -> None:
        return None

    assert bare() == "ok"
    named()
    with profile_block("a.block"):
        pass
    names = {row.name for row in default_profiler.report()}
    assert names == {f"{__name__}.{bare.__qualname__}", "custom.name", "a.block"}


# --- statistics --------------------------------------------------------------------------------------------


def test_wall_and_cpu_statistics_are_exact(prof: Profiler, wall: FakeClock, cpu: FakeClock) -> None:
    @profiled(name="work", profiler=prof)
    def work(seconds: float, cpu_seconds: float) -> None:
        wall.advance(seconds)
        cpu.advance(cpu_seconds)

    for seconds, cpu_seconds in [(0.1, 0.05), (0.3, 0.1), (0.2, 0.15), (0.4, 0.1)]:
        work(seconds, cpu_seconds)
    stats = stats_of(prof, "work")
    assert stats.name == "work"
    assert stats.count == 4
    assert stats.errors == 0
    assert stats.total == pytest.approx(1.0)
    assert stats.mean == pytest.approx(0.25)
    assert (stats.min, stats.max) == (pytest.approx(0.1), pytest.approx(0.4))
    assert stats.p50 == pytest.approx(0.2), "nearest rank: the 2nd of 4 sorted samples"
    assert stats.p95 == pytest.approx(0.4)
    assert stats.p99 == pytest.approx(0.4)
    assert stats.cpu_total == pytest.approx(0.4)
    assert stats.cpu_mean == pytest.approx(0.1)
    assert stats.cpu_max == pytest.approx(0.15)
    assert stats.cpu_ratio == pytest.approx(0.4)
    assert stats.samples == 4


def test_quantiles_use_nearest_rank_over_a_hundred_samples(prof: Profiler) -> None:
    for millis in range(100, 0, -1):
        prof.record("q", millis / 1000)
    stats = stats_of(prof, "q")
    assert (stats.p50, stats.p95, stats.p99) == (0.050, 0.095, 0.099)


def test_quantiles_cover_the_last_window_while_totals_cover_every_call(wall: FakeClock) -> None:
    profiler = Profiler(enabled=True, window=10, timer=wall.monotonic)
    for value in range(1, 21):
        profiler.record("w", float(value))
    stats = stats_of(profiler, "w")
    assert stats.count == 20
    assert stats.total == sum(range(1, 21))
    assert (stats.min, stats.max) == (1.0, 20.0), "min and max are all-time"
    assert stats.samples == 10
    assert stats.p50 == 15.0, "the median of the last ten calls, 11..20"
    assert stats.p99 == 20.0


def test_a_call_that_raises_is_recorded_and_counted_as_an_error(prof: Profiler, wall: FakeClock) -> None:
    @profiled(name="fails", profiler=prof)
    def fails() -> None:
        wall.advance(0.5)
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        fails()
    stats = stats_of(prof, "fails")
    assert (stats.count, stats.errors, stats.total) == (1, 1, 0.5)


def test_times_are_inclusive_so_recursion_counts_every_level(prof: Profiler, wall: FakeClock) -> None:
    @profiled(name="countdown", profiler=prof)
    def countdown(n: int) -> int:
        wall.advance(1.0)
        return 0 if n == 0 else countdown(n - 1) + 1

    assert countdown(2) == 2
    stats = stats_of(prof, "countdown")
    assert stats.count == 3
    assert stats.total == 3.0 + 2.0 + 1.0


def test_cpu_ratio_is_zero_when_no_wall_time_passed(prof: Profiler) -> None:
    prof.record("instant", 0.0, 0.0)
    assert stats_of(prof, "instant").cpu_ratio == 0.0


def test_manual_record_counts_even_while_stopped() -> None:
    profiler = Profiler()
    profiler.record("external", 0.2, 0.1, failed=True)
    stats = stats_of(profiler, "external")
    assert (stats.count, stats.errors, stats.total, stats.cpu_total) == (1, 1, 0.2, 0.1)


def test_the_default_timers_measure_real_time() -> None:
    profiler = Profiler(enabled=True)

    @profiled(name="spin", profiler=profiler)
    def spin() -> int:
        return sum(range(20_000))

    spin()
    stats = stats_of(profiler, "spin")
    assert stats.total > 0
    assert stats.cpu_total > 0


def test_names_beyond_max_names_are_dropped_and_counted() -> None:
    profiler = Profiler(enabled=True, max_names=2)
    for name in ("a", "b", "c", "c", "a"):
        profiler.record(name, 1.0)
    assert sorted(row.name for row in profiler.report()) == ["a", "b"]
    assert stats_of(profiler, "a").count == 2
    assert profiler.dropped == 2
    profiler.reset()
    assert profiler.dropped == 0


# --- async -------------------------------------------------------------------------------------------------


async def test_async_functions_record_wall_time_across_awaits(prof: Profiler, wall: FakeClock) -> None:
    @profiled(name="handler", profiler=prof)
    async def handler(x: int) -> int:
        wall.advance(0.1)
        await asyncio.sleep(0)
        wall.advance(0.2)
        return x + 1

    assert inspect.iscoroutinefunction(handler)
    assert await handler(1) == 2
    stats = stats_of(prof, "handler")
    assert stats.count == 1
    assert stats.total == pytest.approx(0.3)


async def test_async_cpu_time_excludes_other_tasks_that_ran_while_suspended(
    prof: Profiler, cpu: FakeClock
) -> None:
    suspended, resumed = asyncio.Event(), asyncio.Event()

    @profiled(name="measured", profiler=prof)
    async def measured() -> None:
        cpu.advance(0.01)
        suspended.set()
        await resumed.wait()
        cpu.advance(0.02)

    async def neighbour() -> None:
        await suspended.wait()
        cpu.advance(5.0)  # another task burns CPU on this thread while `measured` waits
        resumed.set()

    await asyncio.gather(measured(), neighbour())
    assert stats_of(prof, "measured").cpu_total == pytest.approx(0.03)


async def test_async_errors_propagate_and_are_counted(prof: Profiler) -> None:
    @profiled(name="fails", profiler=prof)
    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await fails()
    stats = stats_of(prof, "fails")
    assert (stats.count, stats.errors) == (1, 1)


async def test_cancelling_a_profiled_coroutine_reaches_it_and_is_counted(prof: Profiler) -> None:
    started = asyncio.Event()
    cleaned_up: list[bool] = []

    @profiled(name="waits", profiler=prof)
    async def waits() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append(True)

    task = asyncio.create_task(waits())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned_up == [True]
    assert stats_of(prof, "waits").errors == 1


async def test_a_coroutine_that_handles_a_thrown_in_error_keeps_running(prof: Profiler) -> None:
    started = asyncio.Event()

    @profiled(name="stubborn", profiler=prof)
    async def stubborn() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            return "handled"
        return "unreachable"  # pragma: no cover

    task = asyncio.create_task(stubborn())
    await started.wait()
    task.cancel()
    assert await task == "handled"
    stats = stats_of(prof, "stubborn")
    assert (stats.count, stats.errors) == (1, 0)


@types.coroutine
def _suspend_once() -> Generator[None, None, None]:
    yield


def test_closing_a_suspended_profiled_coroutine_closes_the_inner_one(prof: Profiler) -> None:
    closed: list[bool] = []

    @profiled(name="closable", profiler=prof)
    async def closable() -> None:
        try:
            await _suspend_once()
        finally:
            closed.append(True)

    coroutine = closable()
    coroutine.send(None)
    coroutine.close()
    assert closed == [True]
    assert stats_of(prof, "closable").errors == 1, "GeneratorExit ended the call"


async def test_a_stopped_async_wrapper_awaits_the_function_directly() -> None:
    profiler = Profiler()

    @profiled(profiler=profiler)
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    assert await double(4) == 8
    assert profiler.report() == []


async def test_async_callables_that_are_not_plain_functions_are_profiled(prof: Profiler) -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    add_one = profiled(functools.partial(add, 1), name="add_one", profiler=prof)
    assert inspect.iscoroutinefunction(add_one)
    assert await add_one(2) == 3
    prof.stop()
    assert await add_one(3) == 4
    assert stats_of(prof, "add_one").count == 1


# --- the wrapper -------------------------------------------------------------------------------------------


def test_the_wrapper_keeps_the_function_identity() -> None:
    def original(a: int, b: str = "x") -> str:
        """Docs."""
        return b * a

    wrapped = profiled(original, profiler=Profiler())
    assert wrapped.__name__ == "original"
    assert wrapped.__qualname__ == original.__qualname__
    assert wrapped.__doc__ == "Docs."
    assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(original)


def test_the_default_name_is_module_and_qualname(prof: Profiler) -> None:
    class Repository:
        @profiled(profiler=prof)
        def load(self, key: str) -> str:
            return key.upper()

    assert Repository().load("k") == "K", "the wrapper binds as a method"
    [row] = prof.report()
    assert row.name == f"{__name__}.{Repository.load.__qualname__}"
    assert row.name.endswith("Repository.load")


def test_static_and_class_methods_can_be_decorated_in_either_order(prof: Profiler) -> None:
    class Tools:
        @profiled(profiler=prof)  # type: ignore[arg-type]
        @staticmethod
        def static_above(x: int) -> int:
            return x + 1

        @staticmethod
        @profiled(profiler=prof)
        def static_below(x: int) -> int:
            return x + 2

        @profiled(profiler=prof)  # type: ignore[arg-type]
        @classmethod
        def class_above(cls, x: int) -> str:
            return f"{cls.__name__}{x}"

    assert Tools.static_above(1) == 2
    assert Tools().static_below(1) == 3
    assert Tools.class_above(3) == "Tools3"
    names = {row.name.rsplit(".", 1)[-1]: row.count for row in prof.report()}
    assert names == {"static_above": 1, "static_below": 1, "class_above": 1}


def test_snapshot_refuses_a_bad_limit(prof: Profiler) -> None:
    with pytest.raises(ValidationError, match="limit must be None") as caught:
        prof.snapshot(limit=0)
    assert caught.value.field == "limit"


def _every_kind(
    a: int, b: int = 2, /, c: int = 3, *args: int, d: int, e: int = 5, **kwargs: int
) -> tuple[Any, ...]:
    return (a, b, c, args, d, e, kwargs)


def _positional_only(a: int, b: int, /) -> tuple[int, int]:
    return (a, b)


def _keyword_only(*, key: str) -> str:
    return key


def _captured(value: int) -> int:
    def inner() -> int:
        return value

    return inner()


def _reserved(_bt_profiler: int, *, _bt_func: int = 1) -> int:
    return _bt_profiler + _bt_func


@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        (_every_kind, (1,), {"d": 4}),
        (_every_kind, (1, 9, 8, 7, 6), {"d": 0, "z": 1}),
        (_every_kind, (1,), {"c": 30, "d": 4, "e": 50}),
        (_positional_only, (1, 2), {}),
        (_keyword_only, (), {"key": "k"}),
        (_captured, (7,), {}),
        (_reserved, (1,), {"_bt_func": 2}),
        (len, ([1, 2, 3],), {}),
        (functools.partial(_every_kind, 1, d=4), (2,), {}),
    ],
)
def test_every_parameter_kind_is_forwarded_unchanged_stopped_and_running(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    profiler = Profiler()
    wrapped = profiled(func, name="f", profiler=profiler)
    expected = func(*args, **kwargs)
    assert wrapped(*args, **kwargs) == expected
    profiler.start()
    assert wrapped(*args, **kwargs) == expected
    assert stats_of(profiler, "f").count == 1


def test_a_function_with_an_explicit_signature_gets_the_generic_wrapper(prof: Profiler) -> None:
    def flexible(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return (args, kwargs)

    flexible.__signature__ = inspect.Signature([])  # type: ignore[attr-defined]
    wrapped = profiled(flexible, name="flexible", profiler=prof)
    assert wrapped(1, k=2) == ((1,), {"k": 2}), "forwarded as called, not as the declared signature says"
    assert stats_of(prof, "flexible").count == 1


# --- safety of the compiled wrapper: only checked names become source, defaults go by reference -------

INJECTED: list[str] = []  # what an injected parameter name would append to, were it ever executed


def _one(value: object = 5) -> object:
    return value


def _renamed(name: str) -> Callable[..., Any]:
    """``_one`` with its parameter renamed in the code object, which a hand-built code object can do."""
    code = _one.__code__.replace(co_varnames=(name,))
    return types.FunctionType(code, _one.__globals__, "renamed", (5,))


@pytest.mark.parametrize(
    "name",
    [
        f"value=__import__('sys').modules[{__name__!r}].INJECTED.append('definition')",
        "value): pass\nimport os\ndef x(",
        "class",  # a keyword
        "__debug__",  # an identifier no parameter may have
        "\ufb01le",  # "ﬁle": an identifier the parser would read back as "file" (NFKC)
        ".0",  # a comprehension's implicit argument, which inspect renames to "implicit0"
    ],
)
def test_parameter_names_that_cannot_be_written_back_as_source_get_the_generic_wrapper(name: str) -> None:
    func = _renamed(name)
    profiler = Profiler()
    wrapped = profiled(func, name="renamed", profiler=profiler)
    assert wrapped.__code__.co_varnames == ("args", "kwargs")  # type: ignore[attr-defined]
    assert wrapped() == 5
    profiler.start()
    assert wrapped(7) == 7
    assert wrapped(**{name: 8}) == 8  # the function's own (odd) name still works as a keyword
    assert stats_of(profiler, "renamed").count == 2
    assert INJECTED == []


def test_the_forwarding_checks_names_itself_rather_than_trusting_inspect() -> None:
    forged = types.SimpleNamespace(
        parameters={
            "x": types.SimpleNamespace(
                name="x=INJECTED.append('forged')",
                kind=inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=inspect.Parameter.empty,
            )
        }
    )
    assert forwarding_module._parameter_lists(forged) is None  # type: ignore[arg-type]
    assert INJECTED == []


class _NotSource:
    """A default whose repr is no source: formatting it into the wrapper would fail the test."""

    def __repr__(self) -> str:
        raise AssertionError("a default value was turned into source text")


_SENTINEL = _NotSource()
_LIST_DEFAULT: list[int] = []
_QUOTED_DEFAULT = "') or INJECTED.append('quoted') or ('"


def _defaults(
    a: object = _SENTINEL, /, b: str = _QUOTED_DEFAULT, *, c: list[int] = _LIST_DEFAULT
) -> tuple[object, str, list[int]]:
    return (a, b, c)


def test_default_values_are_passed_by_reference_never_as_source() -> None:
    profiler = Profiler()
    wrapped = profiled(_defaults, profiler=profiler)
    assert wrapped.__code__.co_varnames == ("a", "b", "c")  # type: ignore[attr-defined]  # compiled
    for running in (False, True):
        profiler._running = running
        a, b, c = wrapped()
        assert a is _SENTINEL
        assert b is _QUOTED_DEFAULT
        assert c is _LIST_DEFAULT
    assert all(
        mine is theirs
        for mine, theirs in zip(
            (*wrapped.__defaults__, *wrapped.__kwdefaults__.values()),  # type: ignore[attr-defined]
            (_SENTINEL, _QUOTED_DEFAULT, _LIST_DEFAULT),
            strict=True,
        )
    )
    assert INJECTED == []


def test_wrong_arguments_fail_as_they_would_without_the_wrapper() -> None:
    wrapped = profiled(_keyword_only, profiler=Profiler())
    with pytest.raises(TypeError, match=r"_keyword_only\(\) missing 1 required keyword-only argument: 'key'"):
        wrapped()  # type: ignore[call-arg]


def test_callable_objects_are_profiled(prof: Profiler) -> None:
    class Doubler:
        def __call__(self, x: int) -> int:
            return 2 * x

    wrapped = profiled(Doubler(), profiler=prof)
    assert wrapped(3) == 6
    assert prof.report()[0].name == f"{__name__}.{Doubler.__qualname__}"


# --- bad input ---------------------------------------------------------------------------------------------


def test_profiling_something_that_is_not_callable_is_refused() -> None:
    with pytest.raises(ValidationError, match="@profiled decorates a function, got 42") as caught:
        profiled(42)  # type: ignore[call-overload]
    assert caught.value.field == "fn"


def test_profiling_a_generator_function_is_refused_with_the_alternative() -> None:
    def numbers() -> Iterator[int]:
        yield 1

    async def stream() -> Any:  # an async generator
        yield 1

    for func in (numbers, stream):
        with pytest.raises(ValidationError, match="only time the creation of the generator") as caught:
            profiled(func, profiler=Profiler())
        assert caught.value.field == "fn"
        assert "profile_block" in caught.value.message


@pytest.mark.parametrize("name", ["", 5, None])
def test_a_bad_name_is_refused(name: Any) -> None:
    profiler = Profiler()
    if name is not None:
        with pytest.raises(ValidationError, match="name must be a non-empty str") as caught:
            profiled(name=name, profiler=profiler)
        assert caught.value.field == "name"
    for running in (False, True):
        profiler._running = running
        with pytest.raises(ValidationError, match="name must be a non-empty str") as caught:
            profile_block(name, profiler=profiler)
        assert caught.value.field == "name"


def test_a_str_subclass_is_a_valid_block_name(prof: Profiler) -> None:
    class Name(str):
        __slots__ = ()

    with profile_block(Name("sub"), profiler=prof):
        pass
    assert stats_of(prof, "sub").count == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": 0}, "window"),
        ({"window": True}, "window"),
        ({"window": 2.5}, "window"),
        ({"max_names": 0}, "max_names"),
        ({"max_names": -3}, "max_names"),
    ],
)
def test_bad_limits_are_refused_with_the_field_and_a_fix(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=rf"{field} must be an int >= 1 \(.*e\.g\. \d+\)") as caught:
        Profiler(**kwargs)
    assert caught.value.field == field


def test_an_unknown_sort_key_names_the_valid_ones(prof: Profiler) -> None:
    with pytest.raises(ValidationError) as caught:
        prof.report(sort="slowest")  # type: ignore[arg-type]
    assert caught.value.field == "sort"
    assert caught.value.message.startswith(
        "sort must be one of 'total', 'p99', 'mean', 'count', 'cpu_total', got 'slowest'"
    )


@pytest.mark.parametrize("limit", [0, -1, True, "3"])
def test_a_bad_limit_is_refused(prof: Profiler, limit: Any) -> None:
    with pytest.raises(ValidationError, match=r"limit must be None \(no limit\) or an int >= 1") as caught:
        prof.report(limit=limit)
    assert caught.value.field == "limit"


# --- reports -----------------------------------------------------------------------------------------------


@pytest.fixture
def two_shapes(prof: Profiler) -> Profiler:
    """'steady' costs most in total; 'spiky' has the worst tail."""
    for _ in range(100):
        prof.record("steady", 0.010, 0.009)
    for index in range(10):
        prof.record("spiky", 0.500 if index == 9 else 0.001, 0.0)
    prof.record("tiny", 0.0001)
    return prof


def test_report_ranks_by_total_or_by_p99(two_shapes: Profiler) -> None:
    assert [row.name for row in two_shapes.report()] == ["steady", "spiky", "tiny"]
    assert [row.name for row in two_shapes.report("p99")] == ["spiky", "steady", "tiny"]
    assert [row.name for row in two_shapes.report("count")] == ["steady", "spiky", "tiny"]
    assert [row.name for row in two_shapes.report("cpu_total")] == ["steady", "spiky", "tiny"]
    assert [row.name for row in two_shapes.report("mean")] == ["spiky", "steady", "tiny"]
    assert [row.name for row in two_shapes.report("total", limit=1)] == ["steady"]


def test_report_breaks_ties_by_name(prof: Profiler) -> None:
    for name in ("b", "c", "a"):
        prof.record(name, 1.0)
    assert [row.name for row in prof.report()] == ["a", "b", "c"]


def test_snapshot_is_json_ready_with_both_rankings(two_shapes: Profiler) -> None:
    snapshot = json.loads(json.dumps(two_shapes.snapshot(limit=2)))
    assert snapshot["enabled"] is True
    assert snapshot["window"] == 2048
    assert snapshot["names"] == 3
    assert snapshot["dropped"] == 0
    assert [row["name"] for row in snapshot["by_total"]] == ["steady", "spiky"]
    assert [row["name"] for row in snapshot["by_p99"]] == ["spiky", "steady"]
    steady = snapshot["by_total"][0]
    assert set(steady) == set(FunctionStats.__dataclass_fields__)
    assert steady["count"] == 100


def test_format_report_is_a_readable_table(two_shapes: Profiler) -> None:
    two_shapes.record("slow", 2.5, 2.5)
    lines = two_shapes.format_report().splitlines()
    assert lines[0].split() == [
        "name",
        "calls",
        "errors",
        "total",
        "mean",
        "p50",
        "p95",
        "p99",
        "max",
        "cpu",
        "cpu%",
    ]
    assert lines[1].split() == [
        "slow",
        "1",
        "0",
        "2.50s",
        "2.50s",
        "2.50s",
        "2.50s",
        "2.50s",
        "2.50s",
        "2.50s",
        "100%",
    ]
    assert lines[2].split()[:4] == ["steady", "100", "0", "1.00s"]
    assert lines[2].split()[4] == "10.00ms"
    assert lines[4].split()[3] == "100.0µs"
    assert len(two_shapes.format_report(limit=1).splitlines()) == 2


def test_format_report_says_when_nothing_was_recorded() -> None:
    profiler = Profiler()
    assert profiler.format_report() == "no profiled calls recorded (profiler stopped)"
    profiler.start()
    assert profiler.format_report() == "no profiled calls recorded (profiler running)"


def test_repr_shows_state_and_size(prof: Profiler) -> None:
    prof.record("x", 1.0)
    assert repr(prof) == "Profiler(running, names=1, window=2048)"
    prof.stop()
    assert repr(prof) == "Profiler(stopped, names=1, window=2048)"


def test_function_stats_to_dict_has_every_field(prof: Profiler) -> None:
    prof.record("x", 1.0, 0.5)
    as_dict = stats_of(prof, "x").to_dict()
    assert as_dict["name"] == "x"
    assert as_dict["cpu_ratio"] == 0.5


# --- blocks ------------------------------------------------------------------------------------------------


def test_profile_block_records_wall_and_cpu(prof: Profiler, wall: FakeClock, cpu: FakeClock) -> None:
    with profile_block("load", profiler=prof):
        wall.advance(0.3)
        cpu.advance(0.1)
    stats = stats_of(prof, "load")
    assert (stats.count, stats.total, stats.cpu_total, stats.errors) == (1, 0.3, 0.1, 0)


def test_profile_block_counts_an_exception_and_lets_it_through(prof: Profiler) -> None:
    with pytest.raises(RuntimeError, match="inside"), profile_block("load", profiler=prof):
        raise RuntimeError("inside")
    assert stats_of(prof, "load").errors == 1


def test_a_block_entered_while_stopped_is_not_recorded_even_if_started_meanwhile() -> None:
    profiler = Profiler()
    with profile_block("late", profiler=profiler):
        profiler.start()
    assert profiler.stats("late") is None


async def test_profile_block_works_inside_async_code(prof: Profiler, wall: FakeClock) -> None:
    with profile_block("async.block", profiler=prof):
        await asyncio.sleep(0)
        wall.advance(0.05)
    assert stats_of(prof, "async.block").total == pytest.approx(0.05)


# --- threads -----------------------------------------------------------------------------------------------


def test_counts_are_exact_when_many_threads_record_the_same_name() -> None:
    profiler = Profiler(enabled=True, window=64)
    threads_count, calls = 8, 2_000

    @profiled(name="shared", profiler=profiler)
    def shared() -> None:
        return None

    barrier = threading.Barrier(threads_count)

    def hammer() -> None:
        barrier.wait()
        for _ in range(calls):
            shared()
            with profile_block("shared.block", profiler=profiler):
                pass

    threads = [threading.Thread(target=hammer) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stats_of(profiler, "shared").count == threads_count * calls
    assert stats_of(profiler, "shared.block").count == threads_count * calls
    assert stats_of(profiler, "shared").samples == 64


def test_reports_can_be_read_while_threads_record() -> None:
    profiler = Profiler(enabled=True)
    stop = threading.Event()

    def record() -> None:
        while not stop.is_set():
            profiler.record("busy", 0.001)

    worker = threading.Thread(target=record)
    worker.start()
    try:
        for _ in range(50):
            profiler.snapshot()
            profiler.format_report()
    finally:
        stop.set()
        worker.join()
    assert stats_of(profiler, "busy").count > 0


def test_the_module_exports_its_public_names() -> None:
    assert sorted(profiler_module.__all__) == profiler_module.__all__
    assert {"FunctionStats", "Profiler", "get_profiler", "profile_block", "profiled"} <= set(
        profiler_module.__all__
    )
