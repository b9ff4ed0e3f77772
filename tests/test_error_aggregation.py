"""Error aggregation: grouping by type, origin and normalised message; bounded memory; masking; threads."""

from __future__ import annotations

import inspect
import json
import math
import sys
import threading
import traceback
from typing import Any

import pytest
from pydantic import SecretStr

from buttress.clock import FakeClock
from buttress.errors import MASK, NotFoundError, ValidationError
from buttress.observe import errors as aggregation_module
from buttress.observe.errors import (
    ErrorAggregator,
    ErrorGroup,
    get_error_aggregator,
    mask_credentials,
    normalise_message,
    report_error,
)


class PaymentDeclinedError(Exception):
    pass


def raise_lookup(user_id: object) -> None:
    raise LookupError(f"user {user_id} not found")  # the line the origin points at


LOOKUP_LINE = inspect.getsourcelines(raise_lookup)[1] + 1


def throw(error: BaseException) -> None:
    raise error


def raised(error: BaseException) -> BaseException:
    """``error`` with a traceback, as an ``except`` clause would see it."""
    try:
        throw(error)
    except BaseException as exc:
        return exc
    raise AssertionError("unreachable")  # pragma: no cover


def caught_lookup(user_id: object) -> BaseException:
    try:
        raise_lookup(user_id)
    except LookupError as exc:
        return exc
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_time=1_700_000_000.0)


@pytest.fixture
def aggregator(clock: FakeClock) -> ErrorAggregator:
    return ErrorAggregator(clock=clock)


# --- grouping ----------------------------------------------------------------------------------------------


def test_occurrences_differing_only_in_ids_are_one_group(aggregator: ErrorAggregator) -> None:
    first = aggregator.record(caught_lookup(123))
    second = aggregator.record(caught_lookup(456))
    assert first == second
    [group] = aggregator.groups()
    assert group.count == 2
    assert group.type == "LookupError"
    assert group.message == "user <num> not found"
    assert group.origin == f"{__name__}:{LOOKUP_LINE}"
    assert group.fingerprint == first
    assert len(first) == 16


def test_type_origin_and_message_each_split_groups(aggregator: ErrorAggregator) -> None:
    aggregator.record(caught_lookup(1))
    aggregator.record(raised(LookupError("user 2 not found")))  # same type and message, raised elsewhere
    aggregator.record(raised(KeyError("user 2 not found")))  # another type
    aggregator.record(caught_lookup("alice"))  # another message
    assert len(aggregator.groups()) == 4


def test_the_type_name_includes_the_module_except_for_builtins(aggregator: ErrorAggregator) -> None:
    aggregator.record(raised(PaymentDeclinedError("card 4242 declined")))
    assert aggregator.groups()[0].type == f"{__name__}.PaymentDeclinedError"


def test_the_origin_is_the_innermost_frame_of_a_chained_traceback(aggregator: ErrorAggregator) -> None:
    def wrapper() -> None:
        try:
            raise_lookup(7)
        except LookupError as exc:
            raise RuntimeError("wrapped") from exc

    try:
        wrapper()
    except RuntimeError as exc:
        aggregator.record(exc)
    [group] = aggregator.groups()
    assert group.origin == f"{__name__}:{inspect.getsourcelines(wrapper)[1] + 4}"
    assert "LookupError: user 7 not found" in group.traceback, "the cause is part of the sample"
    assert "The above exception was the direct cause" in group.traceback


def test_a_never_raised_exception_takes_the_reporting_line_as_origin(aggregator: ErrorAggregator) -> None:
    line = sys._getframe().f_lineno + 1
    aggregator.record(ValueError("built, not raised"))
    group = aggregator.groups()[0]
    assert group.origin == f"{__name__}:{line}"
    assert group.traceback == "ValueError: built, not raised\n"


def test_an_explicit_origin_overrides_the_traceback(aggregator: ErrorAggregator) -> None:
    aggregator.record(caught_lookup(1), origin="billing.sync")
    aggregator.record(caught_lookup(2), origin="billing.sync")
    aggregator.record(caught_lookup(3))
    origins = {group.origin: group.count for group in aggregator.groups()}
    assert origins == {"billing.sync": 2, f"{__name__}:{LOOKUP_LINE}": 1}


@pytest.mark.parametrize(
    ("message", "normalised"),
    [
        ("user 123 not found", "user <num> not found"),
        ("retry 3 of 5 after 1.5s", "retry <num> of <num> after <num>s"),
        ("object at 0x7f3a2b1c0d is gone", "object at <hex> is gone"),
        ("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 missing", "commit <hex> missing"),
        ("order 3f2a1b4c-1234-4abc-9def-0123456789ab missing", "order <uuid> missing"),
        ("document 507f1f77bcf86cd799439011 locked", "document <hex> locked"),
        ("build 12345678901 failed", "build <num> failed"),
        ("the cafebabedeadbeef word is not an id", "the cafebabedeadbeef word is not an id"),
        ("no reply from 10.0.0.12:8080", "no reply from <ip>"),
        ("mail to bob.smith+x@example.co.uk bounced", "mail to <email> bounced"),
        ("expired at 2024-05-01T10:11:12.123Z", "expired at <datetime>"),
        ("batch 2024-05-01 failed", "batch <datetime> failed"),
        ("unknown field 'age' in \"payload\"", "unknown field <str> in <str>"),
        ("can't parse the user's input", "can't parse the user's input"),
        (
            "GET https://api.example.com/v1/items?page=2&token=abc failed",
            "GET https://api.example.com/v1/items?<query> failed",
        ),
        ("GET https://api.example.com/items/42 failed", "GET https://api.example.com/items/<num> failed"),
        ("utf8 codec and http2 stream v2", "utf8 codec and http2 stream v2"),
        ("  spread\n over\tlines  ", "spread over lines"),
        ("redis://app:hunter2@cache:6379/0 down", f"redis://app:{MASK}@cache:<num>/<num> down"),
    ],
)
def test_message_normalisation(message: str, normalised: str) -> None:
    assert normalise_message(message) == normalised


def test_normalised_messages_are_bounded() -> None:
    assert normalise_message("x" * 1_000, max_chars=10) == "x" * 9 + "…"


def test_mask_credentials_hides_only_the_password() -> None:
    assert mask_credentials("postgresql://app:s3cret@db/x") == f"postgresql://app:{MASK}@db/x"
    assert mask_credentials("https://example.com/a:b@c") == "https://example.com/a:b@c"
    assert mask_credentials("amqp://u:p@ss@broker:5672/") == f"amqp://u:{MASK}@broker:5672/"
    assert mask_credentials("no url, just bob@example.com") == "no url, just bob@example.com"


# --- what a group keeps ------------------------------------------------------------------------------------


def test_a_group_keeps_first_and_last_seen_the_first_sample_and_the_latest_context(
    aggregator: ErrorAggregator, clock: FakeClock
) -> None:
    aggregator.record(caught_lookup(1), context={"request": "a"})
    clock.advance(60)
    aggregator.record(caught_lookup(2), context={"request": "b"})
    [group] = aggregator.groups()
    assert group.first_seen == 1_700_000_000.0
    assert group.last_seen == 1_700_000_060.0
    assert group.sample_message == "user 1 not found"
    assert "user 1 not found" in group.traceback
    assert "raise_lookup" in group.traceback
    assert group.traceback.startswith("Traceback (most recent call last):")
    assert group.context == {"request": "b"}


def test_secret_looking_context_keys_are_masked_at_any_depth(aggregator: ErrorAggregator) -> None:
    context = {
        "password": "p",
        "DB_PASSWORD": "p",
        "client_secret": "s",
        "access_token": "t",
        "API-Key": "k",
        "Authorization": "Bearer x",
        "session_cookie": "c",
        "user": "alice",
        "nested": {"refresh_token": "t", "id": 5, "deeper": [{"apikey": "k"}]},
        "wrapped": SecretStr("hidden"),
        "dsn": "postgresql://app:pw@db/x",
    }
    aggregator.record(raised(ValueError("x")), context=context)
    safe = aggregator.groups()[0].context
    for key in ("password", "DB_PASSWORD", "client_secret", "access_token", "API-Key", "Authorization"):
        assert safe[key] == MASK, key
    assert safe["session_cookie"] == MASK
    assert safe["user"] == "alice"
    assert safe["nested"] == {"refresh_token": MASK, "id": 5, "deeper": [{"apikey": MASK}]}
    assert safe["wrapped"] == MASK
    assert safe["dsn"] == f"postgresql://app:{MASK}@db/x"


def test_credentials_in_messages_and_tracebacks_are_masked(aggregator: ErrorAggregator) -> None:
    aggregator.record(raised(ConnectionError("cannot reach redis://:hunter2@cache:6379")))
    group = aggregator.groups()[0]
    assert "hunter2" not in group.sample_message
    assert "hunter2" not in group.traceback
    assert "hunter2" not in json.dumps(aggregator.snapshot())


def test_context_values_become_json_ready_and_bounded(aggregator: ErrorAggregator) -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no str")

    deep: dict[str, Any] = {"l1": {"l2": {"l3": {"l4": {"l5": 1}}}}}
    context = {
        "nan": math.nan,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
        "items": (1, "two", {3}),
        "object": object,
        "broken": Broken(),
        "long": "y" * 2_000,
        "deep": deep,
        "many": {f"k{i}": i for i in range(80)},
        7: "non-str key",
    }
    aggregator.record(raised(ValueError("x")), context=context)
    safe = aggregator.groups()[0].context
    json.dumps(safe, allow_nan=False)
    assert safe["nan"] == "nan"
    assert (safe["ratio"], safe["flag"], safe["nothing"]) == (0.5, True, None)
    assert safe["items"] == [1, "two", [3]]
    assert safe["object"] == "<class 'object'>"
    assert safe["broken"] == "<unprintable Broken>"
    assert len(safe["long"]) == 500
    assert safe["deep"] == {"l1": {"l2": {"l3": "{'l4': {'l5': 1}}"}}}
    assert len(safe["many"]) == 50
    assert safe["7"] == "non-str key"


def test_a_buttress_error_brings_its_own_context(aggregator: ErrorAggregator) -> None:
    aggregator.record(raised(NotFoundError("user", 42)), context={"resource_id": "overridden", "job": "sync"})
    context = aggregator.groups()[0].context
    assert context == {"resource_type": "user", "resource_id": "overridden", "job": "sync"}


def test_long_tracebacks_keep_their_tail(clock: FakeClock) -> None:
    aggregator = ErrorAggregator(clock=clock, max_traceback_chars=120)

    def deep(n: int) -> None:
        if n == 0:
            raise ValueError("at the bottom")
        deep(n - 1)

    try:
        deep(30)
    except ValueError as exc:
        aggregator.record(exc)
    text = aggregator.groups()[0].traceback
    head, tail = text.split("\n", 1)
    assert head.startswith("... (")
    assert head.endswith(" characters cut)")
    assert len(tail) == 120
    assert tail.endswith("ValueError: at the bottom\n")


def test_long_raw_messages_are_bounded(clock: FakeClock) -> None:
    aggregator = ErrorAggregator(clock=clock, max_message_chars=20)
    aggregator.record(raised(ValueError("v" * 100)))
    group = aggregator.groups()[0]
    assert group.sample_message == "v" * 19 + "…"
    assert group.message == "v" * 19 + "…"


def test_an_exception_whose_str_fails_is_still_recorded(aggregator: ErrorAggregator) -> None:
    class UnprintableError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("nope")

    aggregator.record(raised(UnprintableError()))
    group = aggregator.groups()[0]
    assert group.message == "<unprintable UnprintableError>"
    assert group.count == 1


def test_a_traceback_that_cannot_be_formatted_falls_back_to_one_line(
    aggregator: ErrorAggregator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_format(exc: BaseException) -> list[str]:
        raise RuntimeError("formatter broke")

    monkeypatch.setattr(traceback, "format_exception", failing_format)
    aggregator.record(raised(PaymentDeclinedError("card declined")))
    assert aggregator.groups()[0].traceback == f"{__name__}.PaymentDeclinedError: card declined\n"


def test_returned_groups_are_copies(aggregator: ErrorAggregator) -> None:
    aggregator.record(raised(ValueError("x")), context={"a": 1})
    group = aggregator.groups()[0]
    group.context["a"] = 2
    assert aggregator.groups()[0].context == {"a": 1}
    assert isinstance(group, ErrorGroup)
    assert group.to_dict()["fingerprint"] == group.fingerprint


# --- bounded memory ----------------------------------------------------------------------------------------


def test_a_full_table_evicts_the_lowest_count_group(clock: FakeClock) -> None:
    aggregator = ErrorAggregator(max_groups=2, clock=clock)
    frequent = aggregator.record(raised(ValueError("a")))
    aggregator.record(raised(ValueError("a")))
    rare = aggregator.record(raised(KeyError("b")))
    newcomer = aggregator.record(raised(TypeError("c")))
    fingerprints = {group.fingerprint for group in aggregator.groups()}
    assert fingerprints == {frequent, newcomer}, "the newcomer always gets in"
    assert rare not in fingerprints
    assert aggregator.evicted == 1
    assert aggregator.total == 4, "the total still counts errors of evicted groups"


def test_among_equal_counts_the_least_recently_seen_group_goes(clock: FakeClock) -> None:
    aggregator = ErrorAggregator(max_groups=2, clock=clock)
    older = aggregator.record(raised(ValueError("a")))
    newer = aggregator.record(raised(KeyError("b")))
    aggregator.record(raised(TypeError("c")))
    fingerprints = {group.fingerprint for group in aggregator.groups()}
    assert older not in fingerprints
    assert newer in fingerprints


# --- reading -----------------------------------------------------------------------------------------------


def test_groups_are_ordered_by_count_then_recency(aggregator: ErrorAggregator) -> None:
    a = aggregator.record(raised(ValueError("a")))
    b = aggregator.record(raised(KeyError("b")))
    c = aggregator.record(raised(TypeError("c")))
    aggregator.record(raised(TypeError("c")))
    assert [group.fingerprint for group in aggregator.groups()] == [c, b, a]


def test_snapshot_is_json_ready_with_totals(aggregator: ErrorAggregator, clock: FakeClock) -> None:
    for user in range(3):
        aggregator.record(caught_lookup(user))
    aggregator.record(raised(ValueError("other")))
    snapshot = json.loads(json.dumps(aggregator.snapshot(), allow_nan=False))
    assert snapshot["since"] == 1_700_000_000.0
    assert snapshot["total"] == 4
    assert snapshot["group_count"] == 2
    assert snapshot["max_groups"] == 100
    assert snapshot["evicted"] == 0
    assert [group["count"] for group in snapshot["groups"]] == [3, 1]
    assert set(snapshot["groups"][0]) == set(ErrorGroup.__dataclass_fields__)
    assert len(aggregator.snapshot(limit=1)["groups"]) == 1


def test_get_finds_a_group_by_fingerprint(aggregator: ErrorAggregator) -> None:
    fingerprint = aggregator.record(caught_lookup(1))
    found = aggregator.get(fingerprint)
    assert found is not None
    assert found.count == 1
    assert aggregator.get("0" * 16) is None


def test_reset_forgets_everything_and_restarts_the_window(clock: FakeClock) -> None:
    aggregator = ErrorAggregator(max_groups=1, clock=clock)
    aggregator.record(raised(ValueError("a")))
    aggregator.record(raised(KeyError("b")))
    clock.advance(30)
    aggregator.reset()
    assert aggregator.groups() == []
    assert (aggregator.total, aggregator.evicted) == (0, 0)
    assert aggregator.snapshot()["since"] == 1_700_000_030.0


def test_repr_shows_fill_and_total(aggregator: ErrorAggregator) -> None:
    aggregator.record(raised(ValueError("a")))
    assert repr(aggregator) == "ErrorAggregator(groups=1/100, total=1)"


# --- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_groups": 0}, "max_groups"),
        ({"max_groups": -5}, "max_groups"),
        ({"max_groups": True}, "max_groups"),
        ({"max_groups": "100"}, "max_groups"),
        ({"max_traceback_chars": 0}, "max_traceback_chars"),
        ({"max_message_chars": 0}, "max_message_chars"),
    ],
)
def test_bad_limits_are_refused_with_the_field_and_a_fix(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(
        ValidationError, match=rf"^{field} must be an int >= 1 \(.*, e\.g\. \d+\), got "
    ) as caught:
        ErrorAggregator(**kwargs)
    assert caught.value.field == field


def test_recording_something_that_is_not_an_exception_is_refused(aggregator: ErrorAggregator) -> None:
    with pytest.raises(ValidationError, match="exc must be an exception instance, got 'oops'") as caught:
        aggregator.record("oops")  # type: ignore[arg-type]
    assert caught.value.field == "exc"
    with pytest.raises(ValidationError, match="exc must be an exception instance, got <class 'ValueError'>"):
        aggregator.record(ValueError)  # type: ignore[arg-type]


def test_a_context_that_is_not_a_mapping_is_refused(aggregator: ErrorAggregator) -> None:
    with pytest.raises(
        ValidationError, match="context must be a mapping of names to values or None, got list"
    ) as caught:
        aggregator.record(ValueError("x"), context=[("a", 1)])  # type: ignore[arg-type]
    assert caught.value.field == "context"


@pytest.mark.parametrize("origin", ["", 42])
def test_a_bad_origin_is_refused(aggregator: ErrorAggregator, origin: Any) -> None:
    with pytest.raises(
        ValidationError, match=r"origin must be a non-empty str such as 'myapp\.billing:42'"
    ) as caught:
        aggregator.record(ValueError("x"), origin=origin)
    assert caught.value.field == "origin"


@pytest.mark.parametrize("limit", [0, -1, False, 2.0])
def test_a_bad_snapshot_limit_is_refused(aggregator: ErrorAggregator, limit: Any) -> None:
    with pytest.raises(ValidationError, match=r"limit must be None \(every group\) or an int >= 1") as caught:
        aggregator.snapshot(limit=limit)
    assert caught.value.field == "limit"


def test_nothing_is_recorded_when_the_input_is_bad(aggregator: ErrorAggregator) -> None:
    with pytest.raises(ValidationError):
        aggregator.record(ValueError("x"), origin="")
    assert aggregator.total == 0
    assert aggregator.groups() == []


# --- the process-wide aggregator ---------------------------------------------------------------------------


def test_report_error_records_into_the_default_aggregator_with_keyword_context() -> None:
    default = get_error_aggregator()
    assert get_error_aggregator() is default
    default.reset()
    try:
        line = sys._getframe().f_lineno + 1
        fingerprint = report_error(ValueError("bad row 17"), table="users", api_key="k")
        report_error(raised(ValueError("bad row 18")), table="orders")
        groups = {group.fingerprint: group for group in default.groups()}
        assert groups[fingerprint].origin == f"{__name__}:{line}", "the caller of report_error"
        assert groups[fingerprint].context == {"table": "users", "api_key": MASK}
        assert default.total == 2
    finally:
        default.reset()


def test_a_group_created_by_another_thread_while_formatting_is_counted_not_duplicated(
    aggregator: ErrorAggregator, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = raised(ValueError("race"))
    format_traceback = aggregator._traceback

    def slow_format(exc: BaseException, secrets: tuple[str, ...]) -> str:
        # Another thread reports the same failure while this one formats the traceback, outside the lock.
        monkeypatch.setattr(aggregator, "_traceback", format_traceback)
        worker = threading.Thread(target=aggregator.record, args=(error,))
        worker.start()
        worker.join()
        return format_traceback(exc, secrets)

    monkeypatch.setattr(aggregator, "_traceback", slow_format)
    aggregator.record(error)
    [group] = aggregator.groups()
    assert group.count == 2
    assert aggregator.total == 2


# --- threads -----------------------------------------------------------------------------------------------


def test_counts_are_exact_when_many_threads_report(clock: FakeClock) -> None:
    aggregator = ErrorAggregator(clock=clock)
    threads_count, reports = 8, 300
    barrier = threading.Barrier(threads_count)

    def report(worker: int) -> None:
        barrier.wait()
        for index in range(reports):
            aggregator.record(caught_lookup(index), context={"worker": worker})
            aggregator.record(raised(PaymentDeclinedError(f"worker {worker}")))

    threads = [threading.Thread(target=report, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    groups = aggregator.groups()
    assert [group.count for group in groups] == [threads_count * reports] * 2
    assert aggregator.total == 2 * threads_count * reports


def test_eviction_stays_consistent_under_threads(clock: FakeClock) -> None:
    aggregator = ErrorAggregator(max_groups=5, clock=clock)
    threads_count, reports = 6, 200
    for _ in range(2):  # a head start: one-off groups (count 1) can then never evict it
        aggregator.record(raised(ValueError("steady")))

    def report(worker: int) -> None:
        for index in range(reports):
            aggregator.record(raised(ValueError("steady")))
            aggregator.record(raised(KeyError("x")), origin=f"worker{worker}.site{index}")

    threads = [threading.Thread(target=report, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    groups = aggregator.groups()
    assert len(groups) == 5
    assert groups[0].count == 2 + threads_count * reports, "the frequent group is never the one evicted"
    assert aggregator.total == 2 + 2 * threads_count * reports
    assert aggregator.evicted == threads_count * reports - 4


def test_the_module_exports_its_public_names() -> None:
    assert sorted(aggregation_module.__all__) == aggregation_module.__all__
