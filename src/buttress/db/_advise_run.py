"""The advisor as one plan of statements, run by a sync and an async driver on a single connection.

:func:`advise_plan` is a generator: it yields each statement it needs (a :class:`Step`) and receives the
rows. On PostgreSQL it opens a ``READ ONLY`` transaction, plans each sample with ``EXPLAIN (FORMAT JSON,
VERBOSE)`` (never ANALYZE: nothing runs), reads the table's existing indexes, and, when the hypopg
extension is there, plans the statement again once per candidate with that candidate as a hypothetical
index, calling ``hypopg_reset()`` straight after, so hypothetical indexes never pile up (the ``no more oid
available`` crash of ankane/dexter#49) nor outlive the call. A candidate is advised only when the
statement's total cost drops by at least ``min_saving``. Each statement runs inside a savepoint, so one
that cannot be planned is reported as skipped and the others go on. The drivers roll the transaction
back at the end and discard the connection if anything escaped, so nothing hypothetical leaks into the
pool.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from buttress.db._advice import (
    AdviceReport,
    IndexAdvice,
    Sample,
    Skipped,
    candidates,
    covered,
    index_ddl,
    index_name,
    quote_ident,
)
from buttress.db._errors import sqlstate_of, translate
from buttress.db._plans import ScanUse, scan_uses
from buttress.db._sqlite_plans import scanned, sqlite_uses, table_refs, tokens
from buttress.db._tracking import INTERNAL_OPTION
from buttress.errors import ValidationError

if TYPE_CHECKING:
    from buttress.db._database import Database

__all__ = ["INTERNAL", "Step", "aadvise", "advise", "advise_plan", "arun_plan", "run_plan", "samples_of"]

Rows = list[tuple[Any, ...]]
TableKey = tuple[str | None, str]
_PLANNABLE: Final = frozenset({"SELECT", "WITH", "UPDATE", "DELETE", "INSERT", "VALUES", "TABLE"})
INTERNAL: Final = {INTERNAL_OPTION: True}
"""The execution option on the advisor's connection: its EXPLAINs are buttress's, not the application's,
so query tracking can leave them out."""
_REFUSALS: Final = (DBAPIError, TypeError, ValueError)
"""What planning one sample may raise (the driver's TypeError or ValueError for parameters it cannot
bind, too): the sample is skipped with its reason, the others are still advised."""
_PSYCOPG_MARKER: Final = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|%\((\w+)\)s|%s""")
_CLOSE_ENOUGH: Final = 1.05  # a narrower index within 5% of the cheapest plan wins: it costs less to keep
_PG_INDEXES: Final = """
SELECT c.relkind, array_agg(a.attname::text ORDER BY k.ord) FILTER (WHERE k.ord IS NOT NULL)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indpred IS NULL
LEFT JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) ON k.ord <= i.indnkeyatts
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE n.nspname = %(schema)s AND c.relname = %(table)s
GROUP BY c.relkind, i.indexrelid
"""


@dataclass(frozen=True, slots=True)
class Step:
    """One statement for a driver: ``bound`` compiles it with SQLAlchemy ``text()`` (``:name`` markers);
    otherwise it goes to the database driver as it is (``%(name)s``, ``%s``, ``?``)."""

    sql: str
    params: Mapping[str, Any] | tuple[Any, ...] | None = None
    bound: bool = False


Plan = Generator[Step, Rows, AdviceReport]


def _markers(sql: str, backend: str) -> set[str]:
    found = {text[:2] for kind, text in tokens(sql) if kind == "param"}
    return found if backend == "sqlite" else {m for m in found if m[0] != "?"}


def _unplannable(sample: Sample, backend: str) -> str | None:
    toks = tokens(sample.sql)
    if not toks or toks[0][1].upper() not in _PLANNABLE:
        return "only SELECT, WITH, INSERT, UPDATE and DELETE statements are planned"
    if any(text == ";" for _kind, text in toks[:-1]):
        return "more than one statement"
    if sample.params is None and _markers(sample.sql, backend):
        return "it has parameter markers but no params to plan it with"
    return None


def _step(prefix: str, sample: Sample, backend: str) -> Step:
    params = sample.params
    sql = sample.sql.strip().rstrip(";")
    if params is None:
        return Step(prefix + sql)
    if isinstance(params, Mapping):
        if backend == "sqlite":  # sqlite3 takes :name itself; %(name)s is psycopg's spelling of it
            return Step(prefix + _PSYCOPG_MARKER.sub(_sqlite_marker, sql), dict(params))
        if "%(" not in sql:
            return Step(prefix + sql, dict(params), bound=True)
        return Step(prefix + sql, dict(params))
    if backend == "sqlite":
        sql = _PSYCOPG_MARKER.sub(_sqlite_marker, sql)
    return Step(prefix + sql, tuple(params))


def _sqlite_marker(match: re.Match[str]) -> str:
    """psycopg's ``%(name)s`` and ``%s`` as sqlite3's ``:name`` and ``?``; quoted text left alone."""
    token = match.group(0)
    if token[0] in "'\"":
        return token
    return f":{match.group(1)}" if match.group(1) else "?"


def _why(error: Exception) -> str:
    """The cause of a failed plan without the statement's values: the SQLSTATE, or SQLite's message head;
    for a driver's TypeError or ValueError (parameters it cannot bind), the error's type only."""
    if not isinstance(error, DBAPIError):
        return f"its parameters could not be bound to plan it ({type(error).__name__})"
    state = sqlstate_of(error)
    kind = type(error.orig).__name__
    if state is not None:
        return f"the database refused to plan it ({kind}, SQLSTATE {state})"
    head = str(error.orig).split(":")[0].strip()
    return f"the database refused to plan it ({kind}: {head})"


class _Advisor:
    """The state of one advice run: the advice found so far, merged by DDL, and the skipped statements."""

    def __init__(self, backend: str, min_saving: float) -> None:
        self.backend = backend
        self.min_saving = min_saving
        self.hypopg = False
        self.found: dict[str, IndexAdvice] = {}
        self.skipped: list[Skipped] = []

    def add(self, sample: Sample, use: ScanUse, columns: tuple[str, ...], **evidence: Any) -> None:
        ddl = index_ddl(self.backend, use.schema, use.table, columns)
        seen = self.found.get(ddl)
        advice = IndexAdvice(
            schema=use.schema,
            table=use.table,
            columns=columns,
            name=index_name(use.table, columns),
            ddl=ddl,
            statements=(sample.statement,),
            calls=sample.calls,
            total_seconds=float(sample.total_seconds),
            **evidence,
        )
        if seen is not None:
            keep = seen if seen.total_seconds >= advice.total_seconds else advice
            advice = replace(
                keep,
                statements=tuple(dict.fromkeys(seen.statements + advice.statements)),
                calls=seen.calls + advice.calls,
                total_seconds=seen.total_seconds + advice.total_seconds,
            )
        self.found[ddl] = advice

    def unverified(
        self, sample: Sample, use: ScanUse, columns: tuple[str, ...], *, cost_before: float | None
    ) -> None:
        """Advise the most specific candidate as it is, saying why it was not checked."""
        self.add(
            sample,
            use,
            columns,
            verified=False,
            reason=_unverified_reason(self.backend),
            cost_before=cost_before,
            cost_after=None,
            ratio=None,
        )

    def report(self, seconds: float) -> AdviceReport:
        ranked = sorted(
            self.found.values(),
            key=lambda a: (not a.verified, -a.total_seconds, -a.calls, a.ratio or 1.0, a.ddl),
        )
        return AdviceReport(self.backend, self.hypopg, tuple(ranked), tuple(self.skipped), seconds)


def _unverified_reason(backend: str) -> str:
    if backend == "sqlite":
        return "unverified: SQLite has no hypothetical indexes, so the planner's cost was not checked"
    return (
        "unverified: the hypopg extension is not installed in this database (CREATE EXTENSION hypopg), "
        "so the planner's cost was not checked"
    )


def _total_cost(rows: Rows) -> float:
    return float(rows[0][0][0]["Plan"]["Total Cost"])


def _postgres(run: _Advisor, sample: Sample) -> Generator[Step, Rows, None]:
    explain = _step("EXPLAIN (FORMAT JSON, VERBOSE) ", sample, "postgresql")
    rows = yield explain
    before = _total_cost(rows)
    picks: dict[TableKey, tuple[ScanUse, list[tuple[str, ...]]]] = {}
    for use in scan_uses(rows[0][0]):
        if use.indexed and not run.hypopg:
            continue  # a wider index for a scan that has one: worth saying only when the planner agrees
        key = (use.schema, use.table)
        index_rows = yield Step(_PG_INDEXES, {"schema": use.schema, "table": use.table})
        if not index_rows or index_rows[0][0] not in ("r", "m"):
            continue  # views, foreign and partitioned tables: no plain CREATE INDEX CONCURRENTLY for them
        existing = [list(row[1]) for row in index_rows if row[1]]
        equal = [*use.equality, *use.joins]
        fresh = [c for c in candidates(use) if not covered(c, equal, existing)]
        if fresh:
            _use, known = picks.setdefault(key, (use, []))
            known.extend(c for c in fresh if c not in known)
    if not run.hypopg:
        for use, cands in picks.values():
            run.unverified(sample, use, cands[0], cost_before=before)
        return
    costs: dict[TableKey, list[tuple[float, tuple[str, ...]]]] = {}
    for key, (use, cands) in picks.items():
        for columns in cands:
            cost = yield from _hypothetical(explain, [(use, columns)])
            costs.setdefault(key, []).append((cost, columns))
    yield from _choose(run, sample, picks=picks, costs=costs, before=before, explain=explain)


def _hypothetical(
    explain: Step, indexes: Sequence[tuple[ScanUse, tuple[str, ...]]]
) -> Generator[Step, Rows, float]:
    """The statement's total cost with ``indexes`` as hypothetical indexes, reset straight after;
    infinite when hypopg refuses one (a column type with no B-tree operator class, say)."""
    yield Step("SAVEPOINT buttress_candidate")
    try:
        for use, columns in indexes:
            target = ".".join(quote_ident(part) for part in (use.schema, use.table) if part)
            ddl = f"CREATE INDEX ON {target} ({', '.join(quote_ident(c) for c in columns)})"
            yield Step("SELECT indexrelid FROM hypopg_create_index(%(ddl)s)", {"ddl": ddl})
    except DBAPIError:
        yield Step("ROLLBACK TO SAVEPOINT buttress_candidate")
        yield Step("SELECT hypopg_reset()")
        return math.inf
    rows = yield explain
    yield Step("SELECT hypopg_reset()")
    yield Step("RELEASE SAVEPOINT buttress_candidate")
    return _total_cost(rows)


def _choose(
    run: _Advisor,
    sample: Sample,
    *,
    picks: Mapping[TableKey, tuple[ScanUse, list[tuple[str, ...]]]],
    costs: Mapping[TableKey, list[tuple[float, tuple[str, ...]]]],
    before: float,
    explain: Step,
) -> Generator[Step, Rows, None]:
    """Advise, per table, the narrowest candidate within 5% of its cheapest that passes the saving rule;
    when none passes alone, try each table's best together (several tables, each helping a little)."""
    best: dict[TableKey, tuple[float, tuple[str, ...]]] = {}
    for key, results in costs.items():
        cheapest = min(cost for cost, _columns in results)
        near = [
            (len(columns), cost, columns) for cost, columns in results if cost <= cheapest * _CLOSE_ENOUGH
        ]
        _width, cost, columns = min(near, key=lambda item: (item[0], item[1]))
        best[key] = (cost, columns)
    limit = before * (1 - run.min_saving)
    passing = {key: found for key, found in best.items() if found[0] <= limit}
    if not passing:
        helping = {key: found for key, found in best.items() if found[0] < before}
        if len(helping) < 2:
            return
        together = yield from _hypothetical(
            explain, [(picks[key][0], found[1]) for key, found in helping.items()]
        )
        if together > limit:
            return
        passing = {key: (together, found[1]) for key, found in helping.items()}
    for key, (cost, columns) in passing.items():
        alone = len(passing) == 1 or best[key][0] <= limit
        reason = (
            "verified with hypopg"
            if alone
            else "verified with hypopg, together with the other tables' advice"
        )
        run.add(
            sample,
            picks[key][0],
            columns,
            verified=True,
            reason=reason,
            cost_before=before,
            cost_after=cost,
            ratio=cost / before if before else 0.0,
        )


def _sqlite(run: _Advisor, sample: Sample) -> Generator[Step, Rows, None]:
    rows = yield _step("EXPLAIN QUERY PLAN ", sample, "sqlite")
    found, sorts = scanned(str(row[3]) for row in rows)
    refs = table_refs(tokens(sample.sql))
    for ref, automatic in found:
        table = refs.get(ref.lower())
        if table is None:
            continue
        info = yield Step(f"PRAGMA table_info({quote_ident(table)})")
        if not info:
            continue  # a CTE or a subquery's name, not a table
        use = sqlite_uses(
            sample.sql, ref, table, columns=[str(row[1]) for row in info], automatic=automatic, sorts=sorts
        )
        existing: list[list[str | None]] = []
        for index in (yield Step(f"PRAGMA index_list({quote_ident(table)})")):
            if not index[4]:  # a partial index serves only some rows
                cols = yield Step(f"PRAGMA index_info({quote_ident(str(index[1]))})")
                existing.append([None if col[2] is None else str(col[2]) for col in sorted(cols)])
        fresh = [c for c in candidates(use) if not covered(c, [*use.equality, *use.joins], existing)]
        if fresh:
            run.unverified(sample, use, fresh[0], cost_before=None)


def advise_plan(backend: str, samples: Sequence[Sample], min_saving: float) -> Plan:
    """Every statement the advice for ``samples`` needs, in order; returns the report."""
    started = time.perf_counter()
    run = _Advisor(backend, min_saving)
    if backend == "postgresql":
        yield Step("SET TRANSACTION READ ONLY")
        run.hypopg = bool((yield Step("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'")))
    for sample in samples:
        problem = _unplannable(sample, backend)
        if problem is not None:
            run.skipped.append(Skipped(sample.statement, problem))
            continue
        yield Step("SAVEPOINT buttress_advice")
        try:
            yield from (_postgres(run, sample) if backend == "postgresql" else _sqlite(run, sample))
        except _REFUSALS as exc:
            yield Step("ROLLBACK TO SAVEPOINT buttress_advice")
            if run.hypopg:
                yield Step("SELECT hypopg_reset()")
            run.skipped.append(Skipped(sample.statement, _why(exc)))
        else:
            yield Step("RELEASE SAVEPOINT buttress_advice")
    return run.report(time.perf_counter() - started)


def _rows(result: Any) -> Rows:
    return [tuple(row) for row in result] if result.returns_rows else []


def _send(connection: Connection | AsyncConnection, step: Step) -> Any:
    """The result of one step (sync), or the awaitable of it (async)."""
    if step.bound:
        return connection.execute(text(step.sql), step.params)
    return connection.exec_driver_sql(step.sql, step.params)


def _advance(plan: Plan, outcome: Rows | Exception | None) -> Step | AdviceReport:
    """The plan's next step after ``outcome`` (rows, or a failure thrown into it), or its report."""
    try:
        return plan.throw(outcome) if isinstance(outcome, Exception) else plan.send(outcome)  # type: ignore[arg-type]
    except StopIteration as stop:
        report: AdviceReport = stop.value
        return report


def run_plan(connection: Connection, plan: Plan) -> AdviceReport:
    """Drive ``plan`` on ``connection``; a failed step is thrown back into the plan."""
    step = _advance(plan, None)
    while isinstance(step, Step):
        try:
            outcome: Rows | Exception = _rows(_send(connection, step))
        except _REFUSALS as exc:
            outcome = exc
        step = _advance(plan, outcome)
    return step


async def arun_plan(connection: AsyncConnection, plan: Plan) -> AdviceReport:
    """Async :func:`run_plan`."""
    step = _advance(plan, None)
    while isinstance(step, Step):
        try:
            outcome: Rows | Exception = _rows(await _send(connection, step))
        except _REFUSALS as exc:
            outcome = exc
        step = _advance(plan, outcome)
    return step


def samples_of(samples: Iterable[Sample | str], min_saving: float) -> list[Sample]:
    """``samples`` as Sample values (a bare string is a statement without parameters), checked."""
    if isinstance(samples, str | bytes) or not isinstance(samples, Iterable):
        raise ValidationError(
            "samples must be an iterable of Sample (or SQL strings); e.g. "
            "[Sample('SELECT * FROM orders WHERE customer_id = :c', {'c': 7}, calls=120)]",
            field="samples",
        )
    out = [Sample(item) if isinstance(item, str) else item for item in samples]
    for item in out:
        if not isinstance(item, Sample):
            raise ValidationError(
                f"samples must hold Sample values or SQL strings, got {type(item).__name__}", field="samples"
            )
    if isinstance(min_saving, bool) or not isinstance(min_saving, int | float) or not 0 < min_saving < 1:
        raise ValidationError(
            f"min_saving must be a fraction between 0 and 1, got {min_saving!r}; e.g. 0.5 for the 50% rule",
            field="min_saving",
        )
    return out


def advise(db: Database, samples: Iterable[Sample | str], min_saving: float) -> AdviceReport:
    """Run the advice plan on one pooled connection, rolled back at the end (discarded if it failed)."""
    checked = samples_of(samples, min_saving)
    try:
        with db.engine.connect() as connection:
            connection.execution_options(**INTERNAL)
            try:
                report = run_plan(connection, advise_plan(db.backend, checked, min_saving))
            except BaseException:
                connection.invalidate()  # hypothetical indexes die with the server process
                raise
            connection.rollback()
            return report
    except DBAPIError as exc:
        raise translate(exc, backend=db.backend) from exc


async def aadvise(db: Database, samples: Iterable[Sample | str], min_saving: float) -> AdviceReport:
    """Async :func:`advise`."""
    checked = samples_of(samples, min_saving)
    try:
        async with db.async_engine.connect() as connection:
            await connection.execution_options(**INTERNAL)
            try:
                report = await arun_plan(connection, advise_plan(db.backend, checked, min_saving))
            except BaseException:
                await connection.invalidate()
                raise
            await connection.rollback()
            return report
    except DBAPIError as exc:
        raise translate(exc, backend=db.backend) from exc
