"""CircuitBreaker: stop calling an upstream that keeps failing, probe it, and recover by itself.

Trip rules (any that is set): ``consecutive_failures`` in a row, or, once the window holds
``minimum_calls``, a ``failure_rate`` or ``slow_call_rate`` at or above its threshold. OPEN refuses calls
with :class:`~buttress.errors.CircuitOpen` (``retry_after`` = time left) for ``open_duration``, doubled
on each trip that follows a failed probe (capped at ``open_duration_max``); the first call after that
turns it HALF_OPEN and becomes a probe. Up to ``half_open_probes`` probes run at once, each holding a
lease that expires after ``probe_lease`` (so a process that dies mid-probe cannot wedge the breaker);
``half_open_probes`` successes close it, any probe failure (or a slow probe, when the slow-call rule is
on) opens it again. ``isolate()`` holds it open and ``disable()`` holds it closed until ``reset()``.

What counts: an exception matching ``ignore`` is neither success nor failure (the permit is released);
one that does not match ``record`` counts as a success. :class:`~buttress.errors.CircuitOpen`,
:class:`~buttress.errors.RateLimited` and :class:`~buttress.errors.BulkheadFull` raised by the call are
always ignored (another guard refused the call, the upstream never saw it), and so is anything that is
not an ``Exception`` (cancellation, ``KeyboardInterrupt``): the call did not finish.

``store`` is any :class:`~buttress.resilience.BreakerStore` built for this breaker's config, or a
shorthand: ``"memory"`` (this process) or a :class:`~buttress.resilience.RedisState` (every process
shares the state: a CLOSED success makes no round trip, every transition is pushed to every process, and
failures, probes and transitions are one Lua script each; while Redis is unreachable the store's policy
applies: ``local`` uses this process's own state, ``open`` admits everything, ``closed`` refuses
everything). A breaker with a shared store needs a ``name`` or takes its decorated function's
``module.qualname``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar, cast

from buttress._tally import Tally
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import BackendUnavailable, BulkheadFull, CircuitOpen, RateLimited, ValidationError
from buttress.resilience._breaker_redis import BATCH_MAX, RedisBreakerStore
from buttress.resilience._breaker_state import (
    FAILURE,
    SLOW,
    SLOW_FAILURE,
    SUCCESS,
    Admission,
    BreakerConfig,
    BreakerState,
    MemoryBreakerStore,
    Permit,
    StoreView,
    Transition,
    rate,
)
from buttress.resilience._decorate import check_name, wrap
from buttress.resilience._naming import UNNAMED, Unnamed, claim_derived, derived_name, unnamed_error
from buttress.resilience._redis_state import RedisState
from buttress.resilience._stores import BreakerStore
from buttress.resilience._telemetry import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = [
    "STATE_METRIC",
    "BreakerGuard",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "Permit",
    "check_filter",
    "live_breakers",
]

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger(__name__)

STATE_METRIC: Final = "buttress_resilience_breaker_state"
OUTCOMES: Final = ("success", "failure", "rejected", "ignored", "slow")
_REJECTIONS: Final = (CircuitOpen, RateLimited, BulkheadFull)

ExceptionFilter = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]

_live: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
_live_lock = threading.Lock()


def live_breakers() -> list[CircuitBreaker]:
    """Every breaker alive in this process, by name (what ``GET /breakers`` lists)."""
    with _live_lock:
        breakers = list(_live)
    return sorted(breakers, key=lambda breaker: breaker.name)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state and window at one moment; ``retry_after`` is set while OPEN or HALF_OPEN."""

    name: str
    state: str
    failure_rate: float | None
    slow_call_rate: float | None
    calls: int
    failures: int
    retry_after: float | None
    open_duration: float
    store: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_filter(
    value: object, field: str
) -> tuple[type[BaseException], ...] | Callable[[BaseException], bool]:
    """``record``/``ignore`` as a tuple of exception classes or a predicate."""
    if isinstance(value, type) and issubclass(value, BaseException):
        return (value,)
    if isinstance(value, tuple) and all(isinstance(v, type) and issubclass(v, BaseException) for v in value):
        return value
    if callable(value) and not isinstance(value, type):
        return value
    raise ValidationError(
        f"{field} must be an exception class, a tuple of them, or a function taking the exception and "
        f"returning bool, got {value!r}; e.g. {field}=(ConnectionError, TimeoutError)",
        field=field,
    )


def _matches(
    rule: tuple[type[BaseException], ...] | Callable[[BaseException], bool], error: BaseException
) -> bool:
    return isinstance(error, rule) if type(rule) is tuple else bool(rule(error))  # type: ignore[operator]


def _export_state(breaker: CircuitBreaker, registry: MetricsRegistry) -> None:
    if breaker._unnamed:
        return
    gauge = registry.gauge(
        STATE_METRIC,
        "Circuit breaker state: 1 for the state each breaker is in, 0 for the others.",
        labels=("key", "state"),
    )
    current = breaker._store.known_state
    for state in BreakerState:
        gauge.labels(key=breaker.name, state=state.value).set(1 if state is current else 0)


def _check_store(store: object, config: BreakerConfig) -> BreakerStore:
    """``store`` as a BreakerStore built for ``config``, or a ValidationError naming the fix."""
    if not isinstance(store, BreakerStore) or isinstance(store, type):
        raise ValidationError(
            f"store must be 'memory' or a RedisState (shorthands), or a BreakerStore, got {store!r}; "
            "e.g. store=RedisState('redis://127.0.0.1:6379/0')",
            field="store",
        )
    if store.config != config:
        raise ValidationError(
            f"store was built for another config ({store.config}) than this breaker's ({config}); "
            "build the store with the breaker's config, or pass store='memory' or a RedisState",
            field="store",
        )
    return store


class CircuitBreaker:
    """A circuit breaker for one upstream (see the module docs for the rules and states).

    Use it as a decorator, through :meth:`call`/:meth:`acall`, as ``with breaker.guard():`` (sync or
    async), or through the low-level ``acquire``/``record_*``/``release`` protocol that pipelines use.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        consecutive_failures: int | None = 5,
        failure_rate: float | None = None,
        slow_call_rate: float | None = None,
        slow_call_duration: float = 60.0,
        window: float = 100,
        window_type: Literal["count", "time"] = "count",
        minimum_calls: int = 10,
        open_duration: float = 30.0,
        open_duration_max: float = 300.0,
        half_open_probes: int = 1,
        probe_lease: float = 60.0,
        record: ExceptionFilter = Exception,
        ignore: ExceptionFilter = (),
        store: Literal["memory"] | RedisState | BreakerStore = "memory",
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        if name is not None:
            name = check_name(name)
        self.config = BreakerConfig(
            consecutive_failures=consecutive_failures,
            failure_rate=failure_rate,
            slow_call_rate=slow_call_rate,
            slow_call_duration=slow_call_duration,
            window=window,
            window_type=window_type,
            minimum_calls=minimum_calls,
            open_duration=open_duration,
            open_duration_max=open_duration_max,
            half_open_probes=half_open_probes,
            probe_lease=probe_lease,
        )
        self._record = check_filter(record, "record")
        self._ignore = check_filter(ignore, "ignore")
        self.clock = clock
        self._now: Callable[[], float] = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        # _mem is the memory store when that is the store: the hot paths read it directly, no await
        self._store: BreakerStore
        self._mem: MemoryBreakerStore | None = None
        self._red: RedisBreakerStore | None = None  # a Redis store: its copy answers CLOSED calls
        self._state: RedisState | None = None
        if isinstance(store, str) and store == "memory":
            self._store = self._mem = MemoryBreakerStore(self.config, self._now)
        elif isinstance(store, RedisState):
            self._state = store
            if name is not None:
                self._store = self._red = self._redis_store(store, name)
            else:  # named when it decorates a function (adopt_name); refuses every call until then
                self._store = cast(BreakerStore, Unnamed("breaker", BreakerState.CLOSED))
        else:
            self._store = _check_store(store, self.config)
            if isinstance(store, MemoryBreakerStore):
                self._mem = store
            elif isinstance(store, RedisBreakerStore):
                self._red = store
            if name is None:
                name = getattr(store, "name", None)
                if name is None and store.shared:
                    raise unnamed_error("breaker")
        self._unnamed = name is None and self._store.shared
        self.name: str = name if name is not None else (UNNAMED if self._unnamed else "default")
        self._slow = self.config.slow_call_duration
        self.telemetry = Telemetry("breaker", self.name, OUTCOMES, metrics=metrics, events=events)
        self._success = self.telemetry.tally("success")
        self._failure = self.telemetry.tally("failure")
        self._rejected = self.telemetry.tally("rejected")
        self._ignored = self.telemetry.tally("ignored")
        self._slow_tally = self.telemetry.tally("slow")
        self._openings = Tally()
        self.telemetry.on_collect(functools.partial(_export_state, self))
        with _live_lock:
            _live.add(self)

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.name!r}, state={self._store.known_state.value!r}, "
            f"store={self.store_kind!r})"
        )

    @property
    def openings(self) -> int:
        """Times this process saw the breaker open (a trip, or a failed half-open probe)."""
        return self._openings.value

    @property
    def is_local(self) -> bool:
        """True for the memory store: its async methods only wrap the sync ones (for information only:
        callers await the ``a``-methods, which take the memory store's sync path themselves)."""
        return self._mem is not None

    @property
    def store(self) -> BreakerStore:
        """Where this breaker's state lives."""
        return self._store

    @property
    def store_kind(self) -> str:
        """``memory``, ``redis`` or a custom store's kind."""
        return self._store.kind

    def adopt_name(self, fn: Callable[..., Any]) -> None:
        """A shared breaker without a name takes ``fn``'s ``module.qualname`` (see ``_naming``)."""
        if not self._unnamed:
            return
        name = derived_name(fn)
        claim_derived("breaker", name, self)
        self.name = self.telemetry.key = name
        self._unnamed = False
        if self._state is not None:
            self._store = self._red = self._redis_store(self._state, name)

    def _redis_store(self, state: RedisState, name: str) -> RedisBreakerStore:
        fallback = MemoryBreakerStore(self.config, self._now)
        return RedisBreakerStore(state, name, self.config, fallback, self._now)

    # -- low-level protocol ----------------------------------------------------------------------------

    def acquire(self) -> Permit:
        """A permit to make one call, or :class:`~buttress.errors.CircuitOpen` if the breaker refuses."""
        mem = self._mem
        if mem is not None:
            permit = mem.fast
            if permit is not None:
                return permit
        return self._admit(self._store.acquire())

    def acquire_fast(self) -> Permit | None:
        """:meth:`acquire` when the store answers without I/O (memory, or a Redis store's fresh copy in
        CLOSED), else None: await :meth:`aacquire`.

        For async hot paths (pipelines, the HTTP transport): no coroutine is made when none is needed, and
        the caller never asks which store is behind the breaker. Raises CircuitOpen like ``acquire``.
        """
        mem = self._mem
        if mem is None:
            red = self._red  # a Redis store's copy, while it is fresh
            if red is not None and (permit := red.fast) is not None and self._now() < red.due:
                return permit
            return None
        permit = mem.fast
        if permit is not None:
            return permit
        return self._admit(mem.acquire())

    def record_success_fast(self, permit: Permit, duration: float) -> bool:
        """:meth:`record_success` if that needs no I/O (True), else False: await :meth:`arecord_success`."""
        if self._mem is None:
            red = self._red  # a plain CLOSED success on Redis is counted here, written in a batch
            if red is None or permit is not red.closed or duration >= self._slow:
                return False
        self.record_success(permit, duration)
        return True

    def record_success(self, permit: Permit, duration: float) -> None:
        """The call under ``permit`` succeeded after ``duration`` seconds."""
        self._success()
        if duration >= self._slow:
            self._slow_tally()
            transition = self._store.record(permit, SLOW)
        else:
            mem = self._mem
            if mem is not None and permit is mem.closed:
                ring = mem.ring
                if ring is not None:  # the common case, inlined: MemoryBreakerStore.record does the same
                    ring.ring[next(ring.seq) % ring.size] = SUCCESS
                    if mem.streak:
                        mem.clear_streak()
                    return
            transition = self._store.record(permit, SUCCESS)
        if transition is not None:
            self._announce(transition)

    def record_failure(self, permit: Permit, error: BaseException, duration: float) -> None:
        """The call raised ``error``: a failure, a success (not ``record``ed) or a release (ignored)."""
        verdict = self._classify(error)
        if verdict is None:
            self._ignored()
            self._store.release(permit)
            return
        if not verdict:
            self.record_success(permit, duration)
            return
        self._failure()
        code = FAILURE
        if duration >= self._slow:
            self._slow_tally()
            code = SLOW_FAILURE
        transition = self._store.record(permit, code)
        if transition is not None:
            self._announce(transition)

    def release(self, permit: Permit) -> None:
        """The call did not happen (or was cancelled): free a probe lease, record nothing."""
        self._store.release(permit)

    async def aacquire(self) -> Permit:
        """:meth:`acquire` for async callers (the memory store answers without an await inside)."""
        mem = self._mem
        if mem is not None:
            permit = mem.fast
            if permit is not None:
                return permit
            return self._admit(mem.acquire())
        return self._admit(await self._store.aacquire())

    async def arecord_success(self, permit: Permit, duration: float) -> None:
        mem = self._mem
        if mem is not None:
            if permit is mem.closed and duration < self._slow:
                ring = mem.ring
                if ring is not None:  # the common case, inlined as in record_success: no extra frame
                    self._success()
                    ring.ring[next(ring.seq) % ring.size] = SUCCESS
                    if mem.streak:
                        mem.clear_streak()
                    return
            self.record_success(permit, duration)
            return
        self._success()
        code = SUCCESS
        if duration >= self._slow:
            self._slow_tally()
            code = SLOW
        transition = await self._store.arecord(permit, code)
        if transition is not None:
            self._announce(transition)

    async def arecord_failure(self, permit: Permit, error: BaseException, duration: float) -> None:
        if self._mem is not None:
            self.record_failure(permit, error, duration)
            return
        store = self._store
        verdict = self._classify(error)
        if verdict is None:
            self._ignored()
            await store.arelease(permit)
            return
        if not verdict:
            await self.arecord_success(permit, duration)
            return
        self._failure()
        code = FAILURE
        if duration >= self._slow:
            self._slow_tally()
            code = SLOW_FAILURE
        transition = await store.arecord(permit, code)
        if transition is not None:
            self._announce(transition)

    async def arelease(self, permit: Permit) -> None:
        mem = self._mem
        if mem is not None:
            mem.release(permit)
        else:
            await self._store.arelease(permit)

    def _classify(self, error: BaseException) -> bool | None:
        """None: ignore (release); True: a failure; False: counts as a success."""
        if (
            not isinstance(error, Exception)
            or isinstance(error, _REJECTIONS)
            or _matches(self._ignore, error)
        ):
            return None
        return _matches(self._record, error)

    def _admit(self, admission: Admission) -> Permit:
        if admission.transition is not None:
            self._announce(admission.transition)
        permit = admission.permit
        if permit is None:
            raise self._refuse(admission)
        return permit

    def _refuse(self, admission: Admission) -> CircuitOpen:
        self._rejected()
        state, retry_after = admission.state, max(admission.retry_after, 0.0)
        if admission.note:
            why = f"refuses calls: {admission.note}"
        elif state is BreakerState.FORCED_OPEN:
            why = "is forced open (isolate()) and refuses every call until reset()"
        elif state is BreakerState.HALF_OPEN:
            why = f"is half-open and all {self.config.half_open_probes} probe slot(s) are taken"
        else:
            why = "is open after upstream failures"
        self.telemetry.emit("rejected", state=state.value, retry_after=retry_after)
        return CircuitOpen(
            f"circuit breaker {self.name!r} {why}; retry after {retry_after:.3g} s",
            retry_after=retry_after,
            context={"breaker": self.name, "state": state.value},
        )

    def _announce(self, transition: Transition) -> None:
        level = logging.INFO
        if transition.target is BreakerState.OPEN:
            level = logging.WARNING
            self._openings.add()
        _log.log(
            level,
            "circuit breaker %r: %s -> %s",
            self.name,
            transition.source.value,
            transition.target.value,
        )
        self.telemetry.emit(
            transition.what,
            **{
                "from": transition.source.value,
                "to": transition.target.value,
                "failure_rate": transition.failure_rate,
                "retry_after": transition.retry_after,
            },
        )

    # -- high level ------------------------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through the breaker."""
        now = self._now
        mem = self._mem
        red = None
        if mem is not None:
            permit = mem.fast
            if permit is None:
                permit = self.acquire()
            start = now()
        elif (red := self._red) is not None:  # Redis: in CLOSED its copy admits, a success is counted here
            permit = red.fast
            start = now()
            if permit is None or start >= red.due:
                permit = self._admit(red.acquire())
                start = now()
        else:
            permit = self.acquire()
            start = now()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.record_failure(permit, exc, now() - start)
            raise
        duration = now() - start
        if red is None or not self._counted(red, permit, duration):
            self.record_success(permit, duration)
        return result

    def _counted(self, red: RedisBreakerStore, permit: Permit, duration: float) -> bool:
        """Count a plain CLOSED success on a Redis store here (written in a batch with the next script)."""
        counter = red.successes
        if permit is not red.closed or duration >= self._slow or counter is None:
            return False
        self._success()
        if next(counter) >= BATCH_MAX:
            red.stale()  # the next call writes the batch
        return True

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker (a cancelled call releases its permit)."""
        now = self._now
        if self._mem is not None:  # the memory store: its sync methods, no extra awaits
            permit = self.acquire()
            start = now()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self.record_failure(permit, exc, now() - start)
                raise
            self.record_success(permit, now() - start)
            return result
        red = self._red
        fast = red.fast if red is not None else None
        start = now()
        if fast is None or start >= red.due:  # type: ignore[union-attr]
            permit = await self.aacquire()
            start = now()
        else:
            permit = fast
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self.arecord_failure(permit, exc, now() - start)
            raise
        duration = now() - start
        if red is not None and permit is red.closed and duration < self._slow:
            counter = red.successes  # a CLOSED success on Redis: counted here, no I/O (as _counted)
            if counter is not None:
                self._success()
                if next(counter) >= BATCH_MAX:
                    red.stale()
                return result
        await self.arecord_success(permit, duration)
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a sync or async function or method (an unnamed shared breaker takes its name)."""
        self.adopt_name(fn)
        return wrap(fn, self.call, self.acall)

    def guard(self) -> BreakerGuard:
        """``with breaker.guard():`` or ``async with breaker.guard():`` around a block."""
        return BreakerGuard(self)

    # -- state and control -----------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state (one round trip for the Redis store, which also writes its batch)."""
        if self._mem is not None:
            return self._mem.state
        return self._store.view().state

    def snapshot(self) -> BreakerSnapshot:
        return self._snapshot(self._store.view())

    async def asnapshot(self) -> BreakerSnapshot:
        if self._mem is not None:
            return self.snapshot()
        return self._snapshot(await self._store.aview())

    def _snapshot(self, view: StoreView) -> BreakerSnapshot:
        return BreakerSnapshot(
            name=self.name,
            state=view.state.value,
            failure_rate=rate(view.failures, view.calls),
            slow_call_rate=rate(view.slow_calls, view.calls),
            calls=view.calls,
            failures=view.failures,
            retry_after=view.retry_after,
            open_duration=view.open_duration,
            store=self.store_kind,
        )

    def reset(self) -> None:
        """Back to CLOSED with an empty window and the first open duration."""
        self._control(BreakerState.CLOSED)

    def isolate(self) -> None:
        """FORCED_OPEN: refuse every call until :meth:`reset`."""
        self._control(BreakerState.FORCED_OPEN)

    def disable(self) -> None:
        """DISABLED: admit every call and record nothing until :meth:`reset`."""
        self._control(BreakerState.DISABLED)

    async def areset(self) -> None:
        await self._acontrol(BreakerState.CLOSED)

    async def aisolate(self) -> None:
        await self._acontrol(BreakerState.FORCED_OPEN)

    async def adisable(self) -> None:
        await self._acontrol(BreakerState.DISABLED)

    def _control(self, target: BreakerState) -> None:
        self._controlled(target, *self._store.control(target))

    async def _acontrol(self, target: BreakerState) -> None:
        self._controlled(target, *(await self._store.acontrol(target)))

    def _controlled(self, target: BreakerState, reached: bool, transition: Transition | None) -> None:
        if transition is not None:
            self._announce(transition)
        if not reached:
            raise BackendUnavailable(
                f"circuit breaker {self.name!r}: its {self._store.kind} store is unreachable, so "
                f"{target.value} was applied to this process's local state only; repeat it when the "
                "store is back to apply it everywhere",
                backend=self._store.kind,
                context={"breaker": self.name},
            )


class BreakerGuard:
    """The context manager of :meth:`CircuitBreaker.guard` (one per block)."""

    __slots__ = ("_breaker", "_permit", "_start")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._permit: Permit | None = None
        self._start = 0.0

    def __enter__(self) -> None:
        self._permit = self._breaker.acquire()
        self._start = self._breaker._now()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        breaker, permit = self._breaker, self._permit
        if permit is None:
            return
        self._permit = None
        duration = breaker._now() - self._start
        if exc is None:
            breaker.record_success(permit, duration)
        else:
            breaker.record_failure(permit, exc, duration)

    async def __aenter__(self) -> None:
        self._permit = await self._breaker.aacquire()
        self._start = self._breaker._now()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        breaker, permit = self._breaker, self._permit
        if permit is None:
            return
        self._permit = None
        duration = breaker._now() - self._start
        if exc is None:
            await breaker.arecord_success(permit, duration)
        else:
            await breaker.arecord_failure(permit, exc, duration)
