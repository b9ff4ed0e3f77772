"""Query tracking: per-fingerprint statistics, the slow log and N+1 incidents, cheap enough to leave on.

:class:`QueryTracker` (``db.queries``) listens to the dialect's ``do_execute``, ``do_executemany`` and
``do_execute_no_params`` events of both engines and runs the statement itself, timed by two
``perf_counter_ns`` reads around it. Why those events and not ``before/after_cursor_execute``: they wrap
the driver call, so a statement that fails (a statement timeout, say) is timed too, and no state has to be
carried from one event to the next. Per statement the hot path is: a dict lookup of the SQL string (the
fingerprint is computed once per string: SQLAlchemy reuses its compiled strings), a ``deque.append`` of the
duration (atomic, no lock), one ContextVar read. Every 256 statements of a fingerprint (and whenever it is
read) the pending durations go into its quantile sketch
(:class:`~buttress.observe.sketch.QuantileSketch`, 1 % relative error) in one batch, under a lock, with
the logarithms taken by C-level ``map`` rather than one Python call per statement. The call site is
looked up only for a slow statement or a repeated one inside a scope. Metrics are exported when they are
read (a collect hook), never counted on the hot path.

Bounds: at most ``max_fingerprints`` shapes (statements of further shapes count in one entry whose
fingerprint is ``overflow``), at most four SQL strings per shape cached (then the cache starts over), the
slow log and the incident log are rings, and metric labels are ``backend`` and ``operation`` only.

``rows`` is what the driver reports: rows written by INSERT/UPDATE/DELETE on both backends and rows
returned by SELECT on PostgreSQL; SQLite does not know a SELECT's row count before it is fetched, so its
SELECTs add none.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy import Engine, event

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import DbSettings
from buttress.db._callsite import call_site
from buttress.db._fingerprint import Fingerprint, fingerprint
from buttress.db._n_plus_one import NPlusOneIncident, QueryScope, ScopeState, current_scope, replace_count
from buttress.db._sketch_batch import add_many
from buttress.db._slow_log import EXPLAIN_EVERY, SlowLog, SlowStatement, explain, parameter_types
from buttress.errors import ValidationError
from buttress.events import publish_quietly
from buttress.observe.sketch import QuantileSketch

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

INTERNAL_OPTION: Final = "buttress_internal"
"""The execution option marking statements buttress runs for itself, which the tracker leaves out."""

__all__ = [
    "N_PLUS_ONE_TOPIC",
    "OVERFLOW",
    "SLOW_TOPIC",
    "QueryTracker",
    "RawSample",
    "StatementStats",
]

SLOW_TOPIC: Final = "db.slow_statement"
N_PLUS_ONE_TOPIC: Final = "db.n_plus_one"
OVERFLOW: Final = "overflow"
"""The fingerprint of the entry that counts statements of shapes beyond ``max_fingerprints``."""
_OVERFLOW_PRINT: Final = Fingerprint(OVERFLOW, "(statements beyond max_fingerprints)", "other")
_NS: Final = 1e-9
Order = Literal["total", "mean", "p95", "calls"]
_ORDERS: Final = ("total", "mean", "p95", "calls")
_BATCH: Final = 256
"""Durations a fingerprint holds before they are added to its sketch in one go (and whenever it is read)."""
_Listeners = tuple[tuple[str, Callable[..., bool]], ...]


def _listen(engine: Engine, listeners: _Listeners) -> None:
    for name, listener in listeners:
        event.listen(engine, name, listener)


@dataclass(frozen=True, slots=True)
class StatementStats:
    """What one statement shape cost since tracking began (or the last :meth:`QueryTracker.reset`)."""

    fingerprint: str
    sql: str
    operation: str
    calls: int
    errors: int
    rows: int
    total_seconds: float
    mean_seconds: float
    p50_seconds: float
    p95_seconds: float
    p99_seconds: float
    max_seconds: float


def _first_row(rows: Any) -> Any:
    """The first parameter row of an executemany (None when it has none)."""
    return rows[0] if rows else None


def _as_given(parameters: Any) -> Any:
    return parameters


class RawSample:
    """One real statement of a fingerprint with its parameters, for the index advisor; never shown.

    Its repr names the fingerprint only: the parameters may be secrets and stay in memory.
    """

    __slots__ = ("fingerprint", "parameters", "statement")

    def __init__(self, fingerprint: str, statement: str, parameters: Any) -> None:
        self.fingerprint = fingerprint
        self.statement = statement
        self.parameters = parameters

    def __repr__(self) -> str:
        return f"RawSample({self.fingerprint!r}, <statement and parameters hidden>)"


class _Entry:
    """The running statistics of one fingerprint (mutated under the tracker's lock)."""

    __slots__ = (
        "errors",
        "explained_at",
        "pending",
        "pending_rows",
        "plan",
        "print",
        "rows",
        "sample",
        "sketch",
    )

    def __init__(self, print_: Fingerprint, statement: str, parameters: Any) -> None:
        self.print = print_
        self.sketch = QuantileSketch()  # nanoseconds
        self.pending: collections.deque[int] = collections.deque()  # durations not yet in the sketch
        self.pending_rows: collections.deque[int] = collections.deque()
        self.rows = 0
        self.errors = 0
        self.sample = RawSample(print_.id, statement, parameters)
        self.plan: Any = None
        self.explained_at = -EXPLAIN_EVERY

    def flush(self) -> None:
        """Move the pending durations and row counts into the sketch (under the tracker's lock).

        ``popleft`` is atomic, so a statement recorded meanwhile from another thread stays pending.
        """
        pending = self.pending
        if pending:
            take = pending.popleft
            add_many(self.sketch, [take() for _ in range(len(pending))])
        rows = self.pending_rows
        if rows:
            take = rows.popleft
            self.rows += sum(take() for _ in range(len(rows)))

    def stats(self) -> StatementStats:
        sketch = self.sketch
        count = sketch.count
        p50, p95, p99 = sketch.quantiles((0.5, 0.95, 0.99)) if count else (0.0, 0.0, 0.0)
        return StatementStats(
            fingerprint=self.print.id,
            sql=self.print.sql,
            operation=self.print.operation,
            calls=count,
            errors=self.errors,
            rows=self.rows,
            total_seconds=sketch.sum * _NS,
            mean_seconds=sketch.sum / count * _NS if count else 0.0,
            p50_seconds=(p50 or 0.0) * _NS,
            p95_seconds=(p95 or 0.0) * _NS,
            p99_seconds=(p99 or 0.0) * _NS,
            max_seconds=sketch.max * _NS if count else 0.0,
        )


class QueryTracker:
    """Statement statistics, the slow log and N+1 incidents of one :class:`~buttress.db.Database`.

    ``timer`` returns nanoseconds (default ``time.perf_counter_ns``) and times statements; ``clock`` dates
    log entries and spaces out EXPLAINs; tests inject both. ``metrics`` and ``events`` default to the
    process-wide registry and bus. ``enabled`` turns the whole of it on and off at run time.
    """

    def __init__(
        self,
        settings: DbSettings,
        *,
        backend: str,
        timer: Callable[[], int] = time.perf_counter_ns,
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self._enabled = settings.track_queries
        self.timer = timer
        self.clock = clock
        self.events = events
        self._slow_ns = round(settings.slow_query_ms * 1_000_000)
        self._lock = threading.Lock()
        self._by_sql: dict[str, _Entry] = {}
        self._entries: dict[str, _Entry] = {}
        self._retired: dict[str, QuantileSketch] = {}  # per operation, from before reset(): for the metrics
        self._slow = SlowLog(settings.slow_log_size)
        self._incidents: collections.deque[NPlusOneIncident] = collections.deque(
            maxlen=settings.incident_log_size
        )
        self._engines: list[tuple[Engine, _Listeners]] = []
        from buttress.db._tracking_metrics import TrackingTelemetry  # noqa: PLC0415 - a cycle otherwise

        self.telemetry = TrackingTelemetry(self, metrics)
        self.telemetry.hook()

    def __repr__(self) -> str:
        return (
            f"QueryTracker(backend={self.backend!r}, enabled={self.enabled}, "
            f"fingerprints={len(self._entries)})"
        )

    # -- installation ---------------------------------------------------------------------------------

    def install(self, engine: Engine) -> None:
        """Track ``engine``'s statements (the async engine's ``sync_engine`` for the async one)."""
        dialect = engine.dialect
        no_params = dialect.do_execute_no_params

        def without_parameters(cursor: Any, statement: str, _parameters: Any, context: Any) -> None:
            no_params(cursor, statement, context)

        do_execute = self._listener(dialect.do_execute)
        do_executemany = self._listener(dialect.do_executemany, many=True)
        tracked_no_params = self._listener(without_parameters)

        def do_execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
            return tracked_no_params(cursor, statement, None, context)

        listeners = (
            ("do_execute", do_execute),
            ("do_executemany", do_executemany),
            ("do_execute_no_params", do_execute_no_params),
        )
        self._engines.append((engine, listeners))
        if self._enabled:
            _listen(engine, listeners)

    @property
    def enabled(self) -> bool:
        """Whether statements are tracked; switching off removes the listeners from the engines."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        value = bool(value)
        if value == self._enabled:
            return
        self._enabled = value
        for engine, listeners in self._engines:
            if value:
                _listen(engine, listeners)
            else:
                for name, listener in listeners:
                    event.remove(engine, name, listener)

    # -- the hot path ---------------------------------------------------------------------------------

    def _listener(
        self, call: Callable[[Any, str, Any, Any], Any], *, many: bool = False
    ) -> Callable[[Any, str, Any, Any], bool]:
        """A dialect-event listener that runs ``call`` (the dialect's own method) and records it.

        Every line here is paid by every statement: locals over attributes, no calls on the common path.
        With ``many`` (executemany) the sample keeps the first row of parameters only: a statement is
        planned, explained and slow-logged with one row, as it runs once per row.
        """
        by_sql = self._by_sql
        sample = _first_row if many else _as_given  # chosen once, not per statement

        def listener(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
            if context is not None and context.execution_options.get(INTERNAL_OPTION):
                call(cursor, statement, parameters, context)  # buttress's own probes (the advisor's plans)
                return True
            timer = self.timer
            start = timer()
            try:
                call(cursor, statement, parameters, context)
            except BaseException:
                self._failed(statement, sample(parameters), context, timer() - start)
                raise
            elapsed = timer() - start
            entry = by_sql.get(statement) or self._entry(statement, sample(parameters))
            pending = entry.pending
            pending.append(elapsed or 1)
            rows = cursor.rowcount
            if rows > 0:
                entry.pending_rows.append(rows)
            if len(pending) >= _BATCH:
                self._flush(entry)
            if elapsed >= self._slow_ns:
                self._slow_statement(entry, statement, sample(parameters), context, elapsed, failed=False)
            scope = current_scope()
            if scope is not None and entry.print.operation != "other":
                scope.saw(entry, parameters, self.settings.n_plus_one_threshold, self._raise, self._update)
            return True

        return listener

    def _flush(self, entry: _Entry) -> None:
        with self._lock:
            entry.flush()

    def _failed(self, statement: str, parameters: Any, context: Any, elapsed: int) -> None:
        """A failed statement: timed and counted as an error; slow-logged if slow (without a plan)."""
        entry = self._by_sql.get(statement) or self._entry(statement, parameters)
        entry.pending.append(elapsed or 1)
        with self._lock:
            entry.errors += 1
        if elapsed >= self._slow_ns:
            self._slow_statement(entry, statement, parameters, context, elapsed, failed=True)

    def _entry(self, statement: str, parameters: Any) -> _Entry:
        """The entry of a SQL string not seen before (or since the string cache started over)."""
        print_ = fingerprint(statement)
        with self._lock:
            entry = self._entries.get(print_.id)
            if entry is None:
                if len(self._entries) >= self.settings.max_fingerprints:
                    entry = self._entries.get(OVERFLOW)
                    if entry is None:
                        entry = self._entries[OVERFLOW] = _Entry(_OVERFLOW_PRINT, "", None)
                else:
                    entry = self._entries[print_.id] = _Entry(print_, statement, parameters)
            if len(self._by_sql) >= 4 * self.settings.max_fingerprints:
                self._by_sql.clear()
            self._by_sql[statement] = entry
        return entry

    # -- the rare paths -------------------------------------------------------------------------------

    def _slow_statement(
        self, entry: _Entry, statement: str, parameters: Any, context: Any, elapsed: int, *, failed: bool
    ) -> None:
        print_ = entry.print
        plan = None
        if self.settings.explain_slow and not failed and print_.id != OVERFLOW:
            now = self.clock.monotonic()
            if now - entry.explained_at >= EXPLAIN_EVERY:
                entry.explained_at = now
                entry.plan = explain(self.backend, context.root_connection.connection, statement, parameters)
            plan = entry.plan
        if print_.id != OVERFLOW:
            entry.sample = RawSample(print_.id, statement, parameters)
        slow = SlowStatement(
            fingerprint=print_.id,
            sql=print_.sql,
            operation=print_.operation,
            seconds=elapsed * _NS,
            parameters=parameter_types(parameters),
            site=call_site(2),
            plan=plan,
            failed=failed,
            at=self.clock.time(),
        )
        self._slow.add(slow)
        self.telemetry.count_slow(print_.operation)
        publish_quietly(
            self.events,
            SLOW_TOPIC,
            {
                "backend": self.backend,
                "fingerprint": slow.fingerprint,
                "sql": slow.sql,
                "operation": slow.operation,
                "seconds": slow.seconds,
                "site": slow.site,
                "failed": failed,
            },
        )

    def _raise(self, scope: ScopeState, entry: _Entry, site: str, count: int) -> NPlusOneIncident:
        incident = NPlusOneIncident(
            scope=scope.name,
            fingerprint=entry.print.id,
            sql=entry.print.sql,
            site=site,
            count=count,
            at=self.clock.time(),
        )
        with self._lock:
            self._incidents.append(incident)
        self.telemetry.count_n_plus_one()
        publish_quietly(
            self.events,
            N_PLUS_ONE_TOPIC,
            {
                "backend": self.backend,
                "scope": scope.name,
                "fingerprint": incident.fingerprint,
                "sql": incident.sql,
                "site": site,
                "count": count,
            },
        )
        return incident

    def _update(self, incident: NPlusOneIncident, count: int) -> None:
        with self._lock:
            for index, held in enumerate(self._incidents):
                if held is incident:
                    self._incidents[index] = replace_count(incident, count)
                    return

    # -- reading --------------------------------------------------------------------------------------

    def top(self, n: int = 20, *, by: Order = "total") -> list[StatementStats]:
        """The ``n`` costliest statement shapes by ``total`` time, ``mean``, ``p95`` or ``calls``."""
        if by not in _ORDERS:
            raise ValidationError(
                f"by must be one of {', '.join(_ORDERS)}, got {by!r}; e.g. top(10, by='p95')", field="by"
            )
        if not isinstance(n, int) or n < 1:
            raise ValidationError(f"n must be a positive int, got {n!r}; e.g. top(10)", field="n")
        stats = self.all()
        key: Callable[[StatementStats], float] = {
            "total": lambda s: s.total_seconds,
            "mean": lambda s: s.mean_seconds,
            "p95": lambda s: s.p95_seconds,
            "calls": lambda s: float(s.calls),
        }[by]
        return sorted(stats, key=key, reverse=True)[:n]

    def all(self) -> list[StatementStats]:
        """Every tracked shape's statistics, in no particular order."""
        with self._lock:
            entries = list(self._entries.values())
            for entry in entries:
                entry.flush()
            copies = [(entry, entry.sketch.copy(), entry.rows, entry.errors) for entry in entries]
        out = []
        for entry, sketch, rows, errors in copies:
            frozen = _Entry.__new__(_Entry)
            frozen.print, frozen.sketch, frozen.rows, frozen.errors = entry.print, sketch, rows, errors
            out.append(frozen.stats())
        return out

    def get(self, fingerprint: str) -> StatementStats | None:
        """The statistics of one fingerprint (its 16 hex digits, or ``overflow``), or None."""
        with self._lock:
            entry = self._entries.get(fingerprint)
            if entry is None:
                return None
            entry.flush()
            frozen = _Entry.__new__(_Entry)
            frozen.print, frozen.sketch = entry.print, entry.sketch.copy()
            frozen.rows, frozen.errors = entry.rows, entry.errors
        return frozen.stats()

    def sample(self, fingerprint: str) -> RawSample | None:
        """One real statement of ``fingerprint`` with its parameters (the slowest seen last), or None."""
        with self._lock:
            entry = self._entries.get(fingerprint)
            return None if entry is None or fingerprint == OVERFLOW else entry.sample

    def slow(self) -> list[SlowStatement]:
        """The slow log, oldest first."""
        return self._slow.entries()

    def incidents(self) -> list[NPlusOneIncident]:
        """The N+1 incidents, oldest first."""
        with self._lock:
            return list(self._incidents)

    def reset(self) -> None:
        """Forget the statistics, the slow log and the incidents (exported metrics keep counting)."""
        with self._lock:
            for entry in self._entries.values():
                entry.flush()
                retired = self._retired.setdefault(entry.print.operation, QuantileSketch())
                retired.merge(entry.sketch)
            self._entries.clear()
            self._by_sql.clear()
            self._incidents.clear()
        self._slow.clear()

    def scope(self, name: str) -> QueryScope:
        """A unit of work (a request, a job) for N+1 detection: ``with db.queries.scope("job"):``."""
        return QueryScope(name)

    def sketches(self) -> dict[str, QuantileSketch]:
        """Per operation, every duration (ns) since the tracker began, reset or not: for the metrics."""
        with self._lock:
            merged = {op: sketch.copy() for op, sketch in self._retired.items()}
            for entry in self._entries.values():
                entry.flush()
            live = [(entry.print.operation, entry.sketch.copy()) for entry in self._entries.values()]
        for operation, sketch in live:
            into = merged.get(operation)
            if into is None:
                merged[operation] = sketch
            else:
                into.merge(sketch)
        return merged
