"""Retry, sync side: attempts, what is retried, Retry-After, the deadline, giving up, budget, telemetry."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.clock import FakeClock
from buttress.errors import DeadlineExceeded, RateLimited, RetryExhausted, ValidationError
from buttress.events import Event, EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._backoff import Backoff
from buttress.resilience._retry import Retry, retry_stats


class Throttled(ConnectionError):
    """A failure that says how long to wait, like an HTTP 429 with Retry-After."""

    def __init__(self, retry_after: object) -> None:
        super().__init__(f"throttled for {retry_after}")
        self.retry_after = retry_after


class Flaky:
    """Fails with ``errors`` in order, then returns ``value``; advances ``clock`` by ``duration`` per call."""

    def __init__(
        self,
        *errors: BaseException,
        value: object = "ok",
        clock: FakeClock | None = None,
        duration: float = 0.0,
    ) -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0
        self.clock = clock
        self.duration = duration
        self.started: list[float] = []

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.clock is not None:
            self.started.append(self.clock.monotonic())
            self.clock.advance(self.duration)
        if self.errors:
            raise self.errors.pop(0)
        return self.value


class CountingBudget:
    """A budget that allows ``allow`` retries and counts what Retry asks of it."""

    def __init__(self, allow: int) -> None:
        self.allow = allow
        self.calls = 0
        self.asked = 0

    def record_call(self) -> None:
        self.calls += 1

    def try_spend(self) -> bool:
        self.asked += 1
        if self.allow > 0:
            self.allow -= 1
            return True
        return False

    async def arecord_call(self) -> None:
        self.record_call()

    async def atry_spend(self) -> bool:
        return self.try_spend()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> MetricsRegistry:
    return MetricsRegistry()


@pytest.fixture
def bus() -> Iterator[EventBus]:
    with EventBus() as event_bus:
        yield event_bus


@pytest.fixture
def events(bus: EventBus) -> list[Event]:
    received: list[Event] = []
    bus.subscribe("resilience.retry.*", received.append)
    return received


@pytest.fixture
def make(clock: FakeClock, registry: MetricsRegistry, bus: EventBus) -> Callable[..., Retry]:
    def build(**kwargs: Any) -> Retry:
        kwargs.setdefault("on", ConnectionError)
        kwargs.setdefault("backoff", Backoff.constant(1.0))
        kwargs.setdefault("seed", 1)
        return Retry(clock=clock, metrics=registry, events=bus, **kwargs)

    return build


# -- attempts and what is retried ------------------------------------------------------------------


def test_success_first_time_makes_one_call_and_no_sleep(make: Callable[..., Retry], clock: FakeClock) -> None:
    fn = Flaky()
    assert make().call(fn, 1, key="x") == "ok"
    assert fn.calls == 1
    assert clock.sleeps == []


def test_retries_until_success_within_the_attempts(make: Callable[..., Retry], clock: FakeClock) -> None:
    fn = Flaky(ConnectionError("a"), ConnectionError("b"), value=42)
    assert make(attempts=3).call(fn) == 42
    assert fn.calls == 3
    assert clock.sleeps == [1.0, 1.0]


@pytest.mark.parametrize("attempts", [1, 2, 5])
def test_attempts_counts_every_call_and_gives_up_after_the_last(
    make: Callable[..., Retry], clock: FakeClock, attempts: int
) -> None:
    errors = [ConnectionError(f"down {i}") for i in range(10)]
    fn = Flaky(*errors)
    with pytest.raises(RetryExhausted) as caught:
        make(attempts=attempts).call(fn)
    assert fn.calls == attempts
    assert len(clock.sleeps) == attempts - 1
    error = caught.value
    assert error.attempts == attempts
    assert error.last_error is errors[attempts - 1]
    assert error.__cause__ is errors[attempts - 1]
    assert error.context["reason"] == "attempts"
    assert error.context["function"] == "Flaky"
    assert f"failed after {attempts} attempts" in str(error)
    assert f"ConnectionError('down {attempts - 1}')" in str(error)


def test_subclasses_of_on_are_retried(make: Callable[..., Retry]) -> None:
    fn = Flaky(ConnectionRefusedError(), ConnectionResetError())
    assert make(on=ConnectionError).call(fn) == "ok"
    assert fn.calls == 3


def test_a_tuple_of_types_retries_any_of_them(make: Callable[..., Retry]) -> None:
    fn = Flaky(TimeoutError(), ConnectionError(), value="done")
    assert make(on=(ConnectionError, TimeoutError)).call(fn) == "done"


def test_a_predicate_decides_what_is_retried(make: Callable[..., Retry]) -> None:
    retry = make(on=lambda exc: "transient" in str(exc), attempts=5)
    fn = Flaky(ValueError("transient glitch"), ValueError("transient again"))
    assert retry.call(fn) == "ok"
    permanent = Flaky(ValueError("permanent"))
    with pytest.raises(ValueError, match="permanent"):
        retry.call(permanent)
    assert permanent.calls == 1


def test_a_non_matching_exception_propagates_after_one_attempt(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    boom = KeyError("missing")
    fn = Flaky(boom)
    retry = make()
    with pytest.raises(KeyError) as caught:
        retry.call(fn)
    assert caught.value is boom
    assert fn.calls == 1
    assert clock.sleeps == []
    assert retry.telemetry.counts()["not_retryable"] == 1


def test_a_non_matching_exception_after_retries_propagates_as_is(make: Callable[..., Retry]) -> None:
    boom = KeyError("late")
    fn = Flaky(ConnectionError(), boom)
    with pytest.raises(KeyError) as caught:
        make().call(fn)
    assert caught.value is boom
    assert fn.calls == 2


@pytest.mark.parametrize("signal", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
def test_signals_are_never_retried_even_with_on_base_exception(
    make: Callable[..., Retry], signal: BaseException
) -> None:
    fn = Flaky(signal)
    with pytest.raises(type(signal)):
        make(on=BaseException).call(fn)
    assert fn.calls == 1


def test_signals_are_not_shown_to_a_predicate(make: Callable[..., Retry]) -> None:
    seen: list[BaseException] = []

    def predicate(exc: BaseException) -> bool:
        seen.append(exc)
        return True

    with pytest.raises(KeyboardInterrupt):
        make(on=predicate).call(Flaky(KeyboardInterrupt()))
    assert seen == []


def test_on_exception_retries_ordinary_errors(make: Callable[..., Retry]) -> None:
    assert make(on=Exception).call(Flaky(ValueError(), KeyError())) == "ok"


def test_retry_if_result_retries_until_the_result_is_acceptable(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    results = iter([None, None, "ready"])
    retry = make(retry_if_result=lambda r: r is None, attempts=3)
    assert retry.call(lambda: next(results)) == "ready"
    assert clock.sleeps == [1.0, 1.0]


def test_retry_if_result_gives_up_with_the_last_result_in_the_context(make: Callable[..., Retry]) -> None:
    retry = make(retry_if_result=lambda r: r["status"] == "pending", attempts=2)
    with pytest.raises(RetryExhausted) as caught:
        retry.call(lambda: {"status": "pending"})
    error = caught.value
    assert error.attempts == 2
    assert error.last_error is None
    assert error.__cause__ is None
    assert error.context["result"] == {"status": "pending"}
    assert "result {'status': 'pending'} matched retry_if_result" in str(error)


def test_a_result_that_does_not_match_is_returned_at_once(make: Callable[..., Retry]) -> None:
    fn = Flaky(value=0)
    assert make(retry_if_result=lambda r: r is None).call(fn) == 0
    assert fn.calls == 1


def test_an_exception_after_a_retried_result_is_classified_too(make: Callable[..., Retry]) -> None:
    outcomes: list[Any] = [None, ConnectionError("x"), "ok"]

    def fn() -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    assert make(retry_if_result=lambda r: r is None, attempts=3).call(fn) == "ok"


# -- waits and Retry-After ---------------------------------------------------------------------------


def test_sleeps_follow_the_backoff_with_the_seeded_jitter(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    backoff = Backoff.exponential(0.5, max_delay=100.0, jitter="full")
    errors = [ConnectionError() for _ in range(4)]
    make(backoff=backoff, attempts=5, seed=11, deadline=None).call(Flaky(*errors))
    rng = random.Random(11)
    assert clock.sleeps == [backoff.delay(n, 0.0, rng) for n in range(1, 5)]


def test_decorrelated_jitter_gets_the_previous_delay(make: Callable[..., Retry], clock: FakeClock) -> None:
    backoff = Backoff.exponential(1.0, max_delay=1000.0, jitter="decorrelated")
    make(backoff=backoff, attempts=5, seed=5, deadline=None).call(Flaky(*[ConnectionError()] * 4))
    rng = random.Random(5)
    expected: list[float] = []
    previous = 0.0
    for n in range(1, 5):
        previous = backoff.delay(n, previous, rng)
        expected.append(previous)
    assert clock.sleeps == expected


def test_retry_after_is_honoured_when_longer_than_the_backoff(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    make(backoff=Backoff.constant(0.1), deadline=None).call(Flaky(Throttled(3)))
    assert clock.sleeps == [3.0]


def test_retry_after_shorter_than_the_backoff_keeps_the_backoff(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    make(backoff=Backoff.constant(2.0)).call(Flaky(Throttled(0.5)))
    assert clock.sleeps == [2.0]


def test_retry_after_is_capped_at_max_delay(make: Callable[..., Retry], clock: FakeClock) -> None:
    backoff = Backoff.exponential(0.1, max_delay=5.0, jitter="none")
    make(backoff=backoff, on=Exception, deadline=None).call(Flaky(RateLimited("slow down", retry_after=60)))
    assert clock.sleeps == [5.0]


@pytest.mark.parametrize("value", ["3", None, float("nan"), float("inf"), -1, True, 0])
def test_a_retry_after_that_is_not_a_usable_number_is_ignored(
    make: Callable[..., Retry], clock: FakeClock, value: object
) -> None:
    make(backoff=Backoff.constant(0.25), deadline=None).call(Flaky(Throttled(value)))
    assert clock.sleeps == [0.25]


def test_respect_retry_after_false_uses_the_backoff_only(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    make(backoff=Backoff.constant(0.1), respect_retry_after=False).call(Flaky(Throttled(3)))
    assert clock.sleeps == [0.1]


def test_a_retry_after_longer_than_the_time_left_gives_up_at_once(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    retry = make(backoff=Backoff.exponential(0.1, max_delay=60.0, jitter="none"), deadline=10.0, on=Exception)
    with pytest.raises(DeadlineExceeded) as caught:
        retry.call(Flaky(RateLimited("slow down", retry_after=30)))
    assert clock.sleeps == []
    assert "the next wait of 30.000s would cross it" in str(caught.value)


# -- the deadline -------------------------------------------------------------------------------------


def test_gives_up_before_a_sleep_that_would_cross_the_deadline(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    fn = Flaky(*[ConnectionError(f"e{i}") for i in range(10)], clock=clock, duration=0.7)
    start = clock.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        make(backoff=Backoff.constant(1.0), attempts=100, deadline=5.0).call(fn)
    # 0 -> 0.7 fail, sleep to 1.7, -> 2.4 fail, sleep to 3.4, -> 4.1 fail: 4.1 + 1.0 >= 5 -> give up
    assert fn.calls == 3
    assert clock.sleeps == [1.0, 1.0]
    assert clock.monotonic() - start == pytest.approx(4.1)
    error = caught.value
    assert error.context["attempts"] == 3
    assert error.context["deadline"] == 5.0
    assert error.context["last_error"] is error.__cause__
    assert str(error.__cause__) == "e2"
    assert "gave up at its 5.0s deadline after 3 attempt(s)" in str(error)


def test_a_sleep_ending_exactly_at_the_deadline_is_not_made(
    make: Callable[..., Retry], clock: FakeClock
) -> None:
    with pytest.raises(DeadlineExceeded):
        make(backoff=Backoff.constant(2.0), attempts=10, deadline=4.0).call(Flaky(*[ConnectionError()] * 10))
    assert clock.sleeps == [2.0]


def test_no_deadline_lets_every_attempt_run(make: Callable[..., Retry], clock: FakeClock) -> None:
    fn = Flaky(*[ConnectionError()] * 9, clock=clock, duration=100.0)
    assert make(attempts=10, deadline=None).call(fn) == "ok"
    assert fn.calls == 10


@settings(max_examples=60, deadline=None)
@given(
    duration=st.floats(0.0, 3.0),
    delay=st.floats(0.0, 4.0),
    deadline=st.floats(0.5, 20.0),
    attempts=st.integers(1, 30),
)
def test_the_deadline_is_never_overshot_by_a_sleep_or_a_new_attempt(
    duration: float, delay: float, deadline: float, attempts: int
) -> None:
    clock = FakeClock()
    retry = Retry(
        on=ConnectionError,
        attempts=attempts,
        deadline=deadline,
        backoff=Backoff.constant(delay),
        clock=clock,
        metrics=MetricsRegistry(),
        events=EventBus(),
    )
    fn = Flaky(*[ConnectionError()] * 100, clock=clock, duration=duration)
    start = clock.monotonic()
    with pytest.raises((RetryExhausted, DeadlineExceeded)):
        retry.call(fn)
    assert all(started - start < deadline for started in fn.started)
    assert sum(clock.sleeps) + duration * fn.calls <= deadline + duration  # only the last attempt may overrun
    assert fn.calls <= attempts


# -- the budget ---------------------------------------------------------------------------------------


def test_the_budget_records_each_call_once_and_is_asked_before_each_retry(make: Callable[..., Retry]) -> None:
    budget = CountingBudget(allow=10)
    retry = make(budget=budget, attempts=3)
    retry.call(Flaky(ConnectionError(), ConnectionError()))
    retry.call(Flaky())
    assert budget.calls == 2
    assert budget.asked == 2


def test_a_spent_budget_gives_up_without_retrying(
    make: Callable[..., Retry], clock: FakeClock, bus: EventBus, events: list[Event]
) -> None:
    budget = CountingBudget(allow=1)
    retry = make(budget=budget, attempts=5)
    fn = Flaky(*[ConnectionError(f"e{i}") for i in range(5)])
    with retry_stats() as stats, pytest.raises(RetryExhausted) as caught:
        retry.call(fn)
    assert fn.calls == 2
    assert clock.sleeps == [1.0]
    assert caught.value.attempts == 2
    assert caught.value.context["reason"] == "budget"
    assert "the retry budget is spent" in str(caught.value)
    assert str(caught.value.last_error) == "e1"
    assert stats[0].outcome == "budget"
    assert bus.flush()
    assert [e.topic for e in events][-1] == "resilience.retry.budget_exhausted"
    assert events[-1].payload["attempts"] == 2
    assert retry.telemetry.counts()["gave_up"] == 1


def test_budget_must_offer_the_budget_methods(make: Callable[..., Retry]) -> None:
    with pytest.raises(ValidationError, match="budget must be a RetryBudget or None, got int") as caught:
        make(budget=3)
    assert caught.value.field == "budget"


# -- decorator ----------------------------------------------------------------------------------------


def test_decorator_keeps_name_doc_signature_and_retries(make: Callable[..., Retry]) -> None:
    attempts: list[int] = []

    @make()
    def fetch(url: str, *, timeout: float = 1.0) -> str:
        """Fetch a thing."""
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError
        return f"{url}:{timeout}"

    assert fetch("u", timeout=2.0) == "u:2.0"
    assert attempts == [1, 1]
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a thing."
    assert str(inspect.signature(fetch)) == "(url: 'str', *, timeout: 'float' = 1.0) -> 'str'"


def test_decorator_on_a_method_binds_self(make: Callable[..., Retry]) -> None:
    retry = make()

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry
        def get(self, path: str) -> str:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError
            return path.upper()

    client = Client()
    assert client.get("/a") == "/A"
    assert client.calls == 2


def test_call_passes_a_keyword_argument_named_fn_through(make: Callable[..., Retry]) -> None:
    def echo(*, fn: str) -> str:
        return fn

    assert make().call(echo, fn="kept") == "kept"


# -- telemetry ----------------------------------------------------------------------------------------


def test_events_tell_each_retry_and_the_give_up(
    make: Callable[..., Retry], bus: EventBus, events: list[Event]
) -> None:
    retry = make(name="payments", attempts=2)
    with pytest.raises(RetryExhausted):
        retry.call(Flaky(ConnectionError(), ConnectionResetError()))
    assert bus.flush()
    assert [e.topic for e in events] == ["resilience.retry.retrying", "resilience.retry.gave_up"]
    retrying, gave_up = (e.payload for e in events)
    assert retrying == {
        "key": "payments",
        "function": "Flaky",
        "attempt": 1,
        "delay": 1.0,
        "error": "ConnectionError",
    }
    assert gave_up == {
        "key": "payments",
        "function": "Flaky",
        "attempts": 2,
        "reason": "attempts",
        "error": "ConnectionResetError",
    }


def test_a_deadline_give_up_is_an_event_with_its_reason(
    make: Callable[..., Retry], bus: EventBus, events: list[Event]
) -> None:
    with pytest.raises(DeadlineExceeded):
        make(deadline=0.5).call(Flaky(ConnectionError()))
    assert bus.flush()
    assert [(e.topic, e.payload["reason"]) for e in events] == [("resilience.retry.gave_up", "deadline")]


def test_successes_are_counted_without_events(
    make: Callable[..., Retry], registry: MetricsRegistry, bus: EventBus, events: list[Event]
) -> None:
    retry = make(name="search")
    for _ in range(3):
        retry.call(Flaky())
    retry.call(Flaky(ConnectionError()))
    with pytest.raises(KeyError):
        retry.call(Flaky(KeyError()))
    assert bus.flush()
    assert len(events) == 1
    assert retry.telemetry.counts() == {
        "success": 4,
        "retry": 1,
        "gave_up": 0,
        "not_retryable": 1,
        "deadline": 0,
    }
    text = registry.render_prometheus().decode()
    assert 'buttress_resilience_calls_total{key="search",outcome="success",strategy="retry"} 4.0' in text
    assert 'buttress_resilience_calls_total{key="search",outcome="retry",strategy="retry"} 1.0' in text


def test_repr_shows_the_settings(make: Callable[..., Retry]) -> None:
    text = repr(make(name="db", on=(ConnectionError, TimeoutError), attempts=4, deadline=None))
    assert "Retry(name='db', on=('ConnectionError', 'TimeoutError'), attempts=4, deadline=None" in text


def test_budget_property_returns_the_budget(make: Callable[..., Retry]) -> None:
    budget = CountingBudget(1)
    assert make(budget=budget).budget is budget
    assert make().budget is None


# -- validation ---------------------------------------------------------------------------------------


def test_on_is_required() -> None:
    with pytest.raises(TypeError, match="on"):
        Retry()  # type: ignore[call-arg]


@pytest.mark.parametrize("on", [(), int, "ConnectionError", (ValueError, int), 3, (ValueError, "x")])
def test_on_without_exception_types_explains_there_is_no_catch_all(on: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Retry(on=on)  # type: ignore[arg-type]
    assert caught.value.field == "on"
    message = str(caught.value)
    assert "there is no catch-all default" in message
    assert "e.g. Retry(on=(ConnectionError, TimeoutError))" in message


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        (
            {"attempts": 0},
            "attempts",
            "attempts must be an integer >= 1 (1 call + attempts-1 retries), got 0; e.g. 3",
        ),
        ({"attempts": True}, "attempts", "got True"),
        ({"attempts": 2.0}, "attempts", "got 2.0"),
        ({"deadline": 0}, "deadline", "deadline must be a number of seconds > 0"),
        ({"deadline": float("nan")}, "deadline", "or None for no deadline"),
        ({"deadline": True}, "deadline", "e.g. 30.0"),
        ({"deadline": "30"}, "deadline", "got '30'"),
        ({"backoff": 1.0}, "backoff", "backoff must be a Backoff, got float; e.g. Backoff.exponential(0.5)"),
        ({"retry_if_result": 3}, "retry_if_result", "e.g. retry_if_result=lambda r: r is None"),
        ({"respect_retry_after": 1}, "respect_retry_after", "must be True or False"),
        ({"seed": "x"}, "seed", "seed must be an integer or None"),
        ({"seed": True}, "seed", "e.g. seed=42"),
        ({"name": "two words"}, "name", "without whitespace"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(kwargs: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Retry(on=ConnectionError, **kwargs)
    assert caught.value.field == field
    assert text in str(caught.value)


def test_an_integer_deadline_becomes_a_float() -> None:
    assert Retry(on=OSError, deadline=5, metrics=MetricsRegistry()).deadline == 5.0
