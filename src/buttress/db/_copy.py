"""PostgreSQL bulk writes by COPY through the pooled connection's psycopg driver connection.

An insert is one ``COPY target (...) FROM STDIN (FORMAT BINARY)``. An upsert or update copies the chunk
into a temporary stage (``CREATE TEMP TABLE ... ON COMMIT DROP AS SELECT <columns> FROM target WITH NO
DATA``: the target's column types, none of its constraints) and merges it with one statement,
``INSERT ... SELECT ... ON CONFLICT (...) DO UPDATE`` or ``UPDATE ... FROM``. The stage is read through
``DISTINCT ON (<conflict or key columns>) ... ORDER BY ..., ctid DESC``: a fresh heap keeps COPY's order
in ``ctid``, so when one chunk holds the same key twice the last row wins (PostgreSQL would otherwise
refuse an upsert touching a row twice, and update from an arbitrary one of them). A chunk whose keys are
all different (checked in Python, one set per chunk) skips that sort. An upsert's inserted rows are
read from the transaction's table statistics before and after the merge (``RETURNING`` rows to count
them cost the merge ~10%: EXPLAIN ANALYZE, median of 10 alternating runs of 100k rows).

The binary format needs each column's wire type (``set_types`` with the columns' type OIDs, a domain's
base type), read once per call from ``pg_attribute``. Binary is strict where the server's text input is
lenient (an ``int`` for a ``text`` column, a ``float`` for ``numeric``, a naive datetime for
``timestamptz``) and silently truncates an ``int`` too wide for ``int2``/``int4``; so such values, and
columns of types psycopg cannot dump in binary (enums), send the chunk in the text format instead, where
the server parses and checks every value as an INSERT would.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

import psycopg
from psycopg import pq
from psycopg._copy_base import format_row_binary, format_row_text
from psycopg.adapt import Transformer
from sqlalchemy.dialects import postgresql

from buttress.db._bulk_plan import Values

if TYPE_CHECKING:
    from buttress.db._bulk_plan import Plan, Rows

__all__ = ["DRIVER_ERRORS", "CopyPlan", "NeedsText", "awrite", "is_broken", "write"]

DRIVER_ERRORS: Final = (psycopg.Error,)
STAGE: Final = "buttress_bulk_stage"
BLOCK: Final = 256 * 1024
"""Bytes of COPY data handed to psycopg at a time: the server parses one block while the next is built."""
_BATCH: Final = 256
"""Rows formatted between two looks at the block's size (a look per row costs a tenth of formatting it)."""
_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
"""The binary COPY header: signature, flags (none), header extension length (0)."""
_TRAILER: Final = b"\xff\xff"
_INT_RANGES: Final = {21: (-(2**15), 2**15 - 1), 23: (-(2**31), 2**31 - 1)}
_CLIENT_DUMP_ERRORS: Final = (TypeError, ValueError, OverflowError, psycopg.DataError)
_OIDS: Final = """
SELECT a.attname, coalesce(nullif(t.typbasetype, 0), a.atttypid)::int
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""
_PREPARER: Final = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]
Counts = tuple[int, int | None, int | None]


class NeedsText(Exception):
    """A value binary COPY cannot send (or would truncate): send the chunk again in the text format."""


@dataclass(frozen=True, slots=True)
class Step:
    sql: str
    copy: bool = False
    fetch: bool = False


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """The SQL of one bulk write on PostgreSQL, and the wire types of its columns."""

    op: str
    steps: tuple[Step, ...]
    """The steps of a chunk that may hold a key twice (the stage read through DISTINCT ON)."""
    unique_steps: tuple[Step, ...]
    """The steps of a chunk whose keys are all different (no sort of the stage)."""
    key: Any
    """Gets a row's conflict or key values (an item getter), or None for an insert."""
    types: tuple[int, ...]
    binary: bool
    ranges: tuple[tuple[int, int, int], ...]
    """(column index, min, max) of the int2/int4 columns, checked before a binary chunk is sent."""

    @property
    def describe(self) -> str:
        """The SQL of the plan, for errors (no values)."""
        return "; ".join(step.sql for step in self.steps)

    def text(self) -> CopyPlan:
        """This plan in the text format."""

        def text(steps: tuple[Step, ...]) -> tuple[Step, ...]:
            return tuple(replace(s, sql=s.sql.replace(" (FORMAT BINARY)", "")) for s in steps)

        return replace(self, steps=text(self.steps), unique_steps=text(self.unique_steps), binary=False)

    def steps_for(self, values: Rows) -> tuple[Step, ...]:
        """The steps of this chunk: without the DISTINCT ON sort when (as Python compares them) no two
        rows share a key. Keys Python holds different and the column type equal (``citext``, ``char(n)``)
        are left to the database: an upsert then fails with PostgreSQL's cardinality violation."""
        if self.key is None:
            return self.steps
        try:
            unique = len(set(map(self.key, values))) == len(values)
        except TypeError:  # an unhashable key value: let the database sort it out
            unique = False
        return self.unique_steps if unique else self.steps

    @classmethod
    def load(cls, driver: Any, plan: Plan) -> CopyPlan:
        """Read the target's column types on ``driver`` (a psycopg Connection) and build the plan."""
        with driver.cursor() as cursor:
            cursor.execute(_OIDS, (_PREPARER.format_table(plan.table),))
            return cls.build(driver, plan, dict(cursor.fetchall()))

    @classmethod
    async def aload(cls, driver: Any, plan: Plan) -> CopyPlan:
        """Async :meth:`load` on a psycopg AsyncConnection."""
        async with driver.cursor() as cursor:
            await cursor.execute(_OIDS, (_PREPARER.format_table(plan.table),))
            return cls.build(driver, plan, dict(await cursor.fetchall()))

    @classmethod
    def build(cls, driver: Any, plan: Plan, oids: dict[str, int]) -> CopyPlan:
        names = [plan.name(c) for c in plan.columns]
        types = tuple(oids[n] for n in names)
        binary = all(_dumps_binary(driver, oid) for oid in types)
        ranges = tuple((i, *_INT_RANGES[oid]) for i, oid in enumerate(types) if oid in _INT_RANGES)
        key = None
        if plan.op != "insert":
            indexes = [plan.columns.index(c) for c in plan.matched]
            key = itemgetter(*indexes) if len(indexes) > 1 else itemgetter(indexes[0])
        steps, unique_steps = _steps(plan, names, distinct=True), _steps(plan, names, distinct=False)
        return cls(plan.op, steps, unique_steps, key, types, binary, ranges)

    def fits(self, values: Rows) -> bool:
        """Whether every int2/int4 value is in range (binary COPY would truncate it silently)."""
        try:
            for index, low, high in self.ranges:
                column = [v[index] for v in values if v[index] is not None]
                if column and (min(column) < low or max(column) > high):
                    return False
        except TypeError:  # not all numbers: the text format lets the server say which value is wrong
            return False
        return True


def _dumps_binary(driver: Any, oid: int) -> bool:
    try:
        driver.adapters.get_dumper_by_oid(oid, pq.Format.BINARY)
    except psycopg.ProgrammingError:
        return False
    return True


def _steps(plan: Plan, names: list[str], *, distinct: bool) -> tuple[Step, ...]:
    quote = _PREPARER.quote
    table = _PREPARER.format_table(plan.table)
    cols = ", ".join(quote(n) for n in names)
    if plan.op == "insert":
        return (Step(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)", copy=True),)
    matched = [quote(plan.name(c)) for c in plan.matched]
    on = ", ".join(matched)
    staged = f"SELECT {cols} FROM {STAGE}"  # noqa: S608
    if distinct:
        staged = f"SELECT DISTINCT ON ({on}) {cols} FROM {STAGE} ORDER BY {on}, ctid DESC"  # noqa: S608
    create = f"CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"  # noqa: S608
    copy = f"COPY {STAGE} ({cols}) FROM STDIN (FORMAT BINARY)"
    written = [quote(plan.name(c)) for c in plan.written]
    if plan.op == "upsert":
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in written)
        merge = (
            f"INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM ({staged}) AS s "  # noqa: S608
            f"ON CONFLICT ({on}) DO UPDATE SET {sets}"
        )
        literal = table.replace("'", "''")
        inserted = (
            f"SELECT pg_stat_get_xact_tuples_inserted('{literal}'::regclass), "
            "current_setting('track_counts')::bool"
        )
        count = Step(inserted, fetch=True)
        return Step(create), Step(copy, copy=True), count, Step(merge), count
    sets = ", ".join(f"{c} = s.{c}" for c in written)
    where = " AND ".join(f"t.{c} = s.{c}" for c in matched)
    merge = f"UPDATE {table} AS t SET {sets} FROM ({staged}) AS s WHERE {where}"  # noqa: S608
    return Step(create), Step(copy, copy=True), Step(merge)


def _counts(plan: CopyPlan, values: Rows) -> Generator[Step, Any, Counts]:
    """The steps of one chunk, as a generator the sync and async drivers run; the chunk's counts."""
    sent = len(values)
    answers = []
    for step in plan.steps_for(values):
        answers.append((yield step))  # noqa: PERF401 - a yield cannot sit in a comprehension
    if plan.op == "insert":
        return sent, sent, 0
    if plan.op == "upsert":
        # The merge's rows affected, and of them the rows inserted: the growth, across the merge, of
        # the target's inserted-tuple count in this session's statistics; without track_counts, no split.
        (before, counted), total, (after, _) = answers[-3], int(answers[-2]), answers[-1]
        if not counted:
            return sent, None, None
        inserted = min(max(int(after) - int(before), 0), total)
        return sent, inserted, total - inserted
    return sent, 0, int(answers[-1])


def _blocks(driver: Any, plan: CopyPlan, values: Rows) -> Iterator[bytearray]:
    """The COPY data of ``values`` in blocks of about :data:`BLOCK` bytes.

    Rows are formatted straight into a buffer by psycopg's own row formatter (the C one with
    psycopg[binary]), with a Transformer set to the columns' wire types: what ``Copy.write_row`` does,
    less two Python calls per row, which are most of the client's cost of a COPY.
    """
    transformer = Transformer(driver)
    if plan.binary:
        transformer.set_dumper_types(plan.types, pq.Format.BINARY)
        format_row, block = format_row_binary, bytearray(_SIGNATURE)
    else:
        format_row, block = format_row_text, bytearray()
    iterator = iter(values)
    try:
        for _ in range(0, len(values), _BATCH):
            for value in islice(iterator, _BATCH):
                format_row(value, transformer, block)
            if len(block) > BLOCK:
                yield block
                block = bytearray()
    except (*_CLIENT_DUMP_ERRORS, KeyError) as exc:
        if isinstance(values, Values):
            values.check()  # a row without exactly the columns: its ValidationError aborts the COPY
        if isinstance(exc, KeyError):
            raise
        raise NeedsText(str(exc)) from exc
    if plan.binary:
        block += _TRAILER
    yield block


def _for_chunk(plan: CopyPlan, values: Rows) -> CopyPlan:
    """``plan``, or its text form when a value would be truncated by binary COPY."""
    return plan.text() if plan.binary and not plan.fits(values) else plan


def write(driver: Any, plan: CopyPlan, values: Rows) -> Counts:
    """Write one chunk on ``driver`` (a psycopg Connection in an open transaction)."""
    plan = _for_chunk(plan, values)
    steps = _counts(plan, values)
    answer: Any = None
    with driver.cursor() as cursor:
        try:
            while True:
                step = steps.send(answer)
                if step.copy:
                    with cursor.copy(step.sql) as copy:
                        for block in _blocks(driver, plan, values):
                            copy.write(block)
                    answer = None
                else:
                    cursor.execute(step.sql)
                    answer = cursor.fetchone() if step.fetch else cursor.rowcount
        except StopIteration as stop:
            result: Counts = stop.value
            return result


async def awrite(driver: Any, plan: CopyPlan, values: Rows) -> Counts:
    """Async :func:`write` on a psycopg AsyncConnection."""
    plan = _for_chunk(plan, values)
    steps = _counts(plan, values)
    answer: Any = None
    async with driver.cursor() as cursor:
        try:
            while True:
                step = steps.send(answer)
                if step.copy:
                    async with cursor.copy(step.sql) as copy:
                        for block in _blocks(driver, plan, values):
                            await copy.write(block)
                    answer = None
                else:
                    await cursor.execute(step.sql)
                    answer = await cursor.fetchone() if step.fetch else cursor.rowcount
        except StopIteration as stop:
            result: Counts = stop.value
            return result


def is_broken(driver: Any) -> bool:
    """Whether the psycopg connection is closed or lost (the pool must drop it)."""
    return bool(driver.closed or getattr(driver, "broken", False))
