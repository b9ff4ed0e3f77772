"""Bulk writes, checked: what the caller asked (:func:`spec`), the columns of the first row (:func:`plan`),
and each chunk's rows as value tuples in column order (``Plan.convert``).

Every check raises :class:`~buttress.errors.ValidationError` naming the field and the fix, before the
chunk holding the mistake is sent. See :mod:`buttress.db._bulk` for how the chunks are written.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, Literal, NoReturn

from sqlalchemy import Table, UniqueConstraint
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Dialect

from buttress.errors import ValidationError

__all__ = ["DEFAULT_CHUNK_SIZE", "Op", "Plan", "Rows", "Spec", "Values", "plan", "resolve_table", "spec"]

DEFAULT_CHUNK_SIZE: Final = 100_000
"""Rows per chunk unless the caller says otherwise. Each chunk is one commit, one WAL flush, one stage
and (update) one pass over the target: at 10,000 rows the flushes cost PostgreSQL a fifth of COPY's
speed on this project's machines; at 50,000 a few percent; at 100,000 a 100k-row call is one chunk, as
the raw anchors write it, while a chunk of three-column dicts holds ~60 MB (measured: 62 MB peak for a
million generated rows, 31 MB at 50,000)."""

Op = Literal["insert", "upsert", "update"]


@dataclass(frozen=True, slots=True)
class Spec:
    """A bulk write as asked, checked before any row is read."""

    op: Op
    table: Table
    conflict: tuple[str, ...]
    update: tuple[str, ...] | None
    key: tuple[str, ...]
    chunk_size: int


@dataclass(frozen=True, slots=True)
class Plan:
    """A bulk write with its columns known (those of the first row): what to send, in which order.

    ``columns`` are the row keys in the order values are sent; ``matched`` the conflict (upsert) or key
    (update) columns and ``written`` the columns an upsert or update sets.
    """

    op: Op
    table: Table
    columns: tuple[str, ...]
    matched: tuple[str, ...]
    written: tuple[str, ...]
    convert: Callable[[list[Any], int], Rows]

    def name(self, key: str) -> str:
        """The database name of the column whose key is ``key``."""
        return str(self.table.c[key].name)


class Values(Collection[Sequence[Any]]):
    """A chunk of an insert on PostgreSQL whose rows become value tuples only as COPY formats them.

    Only the rows' key counts are checked up front; the item getter finds (or misses) each column as
    the row is sent, overlapping that work with the server's parsing, and a miss calls :meth:`check`
    for the error, which aborts the chunk's COPY (so its transaction writes nothing).
    """

    __slots__ = ("columns", "getter", "offset", "rows")

    def __init__(
        self, rows: list[Any], getter: Callable[[Any], Sequence[Any]], columns: tuple[str, ...], offset: int
    ) -> None:
        self.rows = rows
        self.getter = getter
        self.columns = columns
        self.offset = offset

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Sequence[Any]]:
        return map(self.getter, self.rows)

    def __contains__(self, value: object) -> bool:
        return any(v == value for v in self)

    def check(self) -> None:
        """Raise the ValidationError of the first row without exactly the columns, if there is one."""
        _check_rows(self.rows, self.offset, self.columns)


Rows = Collection[Sequence[Any]]
"""A chunk's values in column order: a list of tuples, or :class:`Values` (read once per send)."""


# -- checking what the caller asked -----------------------------------------------------------------


def resolve_table(target: object) -> Table:
    """The Table of ``target``: a Table itself or a mapped class (its local table)."""
    if isinstance(target, Table):
        return target
    if isinstance(target, type):
        mapper: object = sa_inspect(target, raiseerr=False)
        table = getattr(mapper, "local_table", None)
        if isinstance(table, Table):
            return table
    raise ValidationError(
        f"target must be a SQLAlchemy Table or a mapped class, got {target!r}; "
        "e.g. db.bulk_insert(items_table, rows) or db.bulk_insert(Item, rows)",
        field="target",
    )


def _names(value: object, field: str, table: Table, *, empty_ok: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable):
        raise ValidationError(f"{field} must be a sequence of column names, got {value!r}", field=field)
    names = tuple(value)
    if not names and not empty_ok:
        raise ValidationError(
            f"{field} must name at least one column of {table.fullname}; e.g. {field}=('id',)", field=field
        )
    unknown = [n for n in names if not isinstance(n, str) or n not in table.c]
    if unknown:
        raise ValidationError(
            f"{field} names {unknown!r}, which are not columns of {table.fullname}; "
            f"its columns are {', '.join(table.c.keys())}",
            field=field,
        )
    if len(set(names)) != len(names):
        raise ValidationError(f"{field} names a column twice: {names!r}", field=field)
    return names


def _unique_sets(table: Table) -> list[frozenset[str]]:
    """The column-key sets the table's metadata declares unique: primary key, constraints, indexes."""
    sets = [frozenset(c.key for c in table.primary_key.columns)]
    sets += [
        frozenset(c.key for c in constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    sets += [
        frozenset(c.key for c in index.columns)
        for index in table.indexes
        if index.unique and len(index.columns) == len(index.expressions)
    ]
    return [s for s in sets if s]


def spec(
    op: Op,
    target: object,
    *,
    conflict: object = (),
    update: object = None,
    key: object = (),
    chunk_size: object = DEFAULT_CHUNK_SIZE,
    progress: object = None,
) -> Spec:
    """Check what the caller asked, before any row is read; a mistake is a ValidationError naming it."""
    table = resolve_table(target)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValidationError(
            f"chunk_size must be a positive int, got {chunk_size!r}; e.g. chunk_size=10_000",
            field="chunk_size",
        )
    if progress is not None and not callable(progress):
        raise ValidationError(
            f"progress must be a callable taking the rows done so far, got {progress!r}", field="progress"
        )
    conflict_names: tuple[str, ...] = ()
    key_names: tuple[str, ...] = ()
    update_names: tuple[str, ...] | None = None
    if op == "upsert":
        conflict_names = _names(conflict, "conflict", table)
        if frozenset(conflict_names) not in _unique_sets(table):
            raise ValidationError(
                f"conflict={conflict_names!r} is not the primary key, a unique constraint or a unique "
                f"index of {table.fullname} as its metadata declares them; name one of "
                f"{[tuple(sorted(s)) for s in _unique_sets(table)]} (declare the constraint on the Table)",
                field="conflict",
            )
        if update is not None:
            update_names = _names(update, "update", table)
            both = sorted(set(update_names) & set(conflict_names))
            if both:
                raise ValidationError(
                    f"update names conflict columns {both!r}; a conflict column cannot be updated",
                    field="update",
                )
    elif op == "update":
        key_names = _names(key, "key", table)
    return Spec(op, table, conflict_names, update_names, key_names, chunk_size)


def plan(spec_: Spec, first: object, dialect: Dialect) -> Plan:
    """The plan of a bulk write whose first row is ``first``: columns, matched and written ones."""
    table = spec_.table
    if not isinstance(first, Mapping):
        _not_a_mapping(first, 0)
    columns = tuple(first)
    unknown = [c for c in columns if not isinstance(c, str) or c not in table.c]
    if unknown:
        raise ValidationError(
            f"row 0 has {unknown!r}, which are not columns of {table.fullname}; "
            f"its columns are {', '.join(table.c.keys())}",
            field="rows",
        )
    if not columns:
        raise ValidationError("row 0 has no columns; a row maps column names to values", field="rows")
    matched = spec_.conflict if spec_.op == "upsert" else spec_.key
    missing = [c for c in matched if c not in columns]
    if missing:
        field = "conflict" if spec_.op == "upsert" else "key"
        raise ValidationError(
            f"the rows lack the {field} columns {missing!r}; every row must carry them", field=field
        )
    written: tuple[str, ...] = ()
    if spec_.op != "insert":
        if spec_.update is not None:
            absent = [c for c in spec_.update if c not in columns]
            if absent:
                raise ValidationError(
                    f"update names {absent!r}, which the rows do not carry; add them to the rows or "
                    "leave them out of update",
                    field="update",
                )
            written = spec_.update
        else:
            written = tuple(c for c in columns if c not in matched)
        if not written:
            raise ValidationError(
                f"nothing to {'update' if spec_.op == 'update' else 'set on conflict'}: the rows carry only "
                f"the {'key' if spec_.op == 'update' else 'conflict'} columns {matched!r}; add the columns "
                "to write to the rows",
                field="update" if spec_.op == "upsert" else "rows",
            )
    lazy = spec_.op == "insert" and dialect.name == "postgresql"
    return Plan(spec_.op, table, columns, matched, written, _converter(table, columns, dialect, lazy=lazy))


def _not_a_mapping(row: object, index: int) -> NoReturn:
    raise ValidationError(
        f"row {index} is a {type(row).__name__}, not a mapping; each row maps column names to values, "
        "e.g. {'id': 1, 'name': 'a'}",
        field="rows",
    )


def _shape_error(row: object, index: int, columns: tuple[str, ...]) -> NoReturn:
    if not isinstance(row, Mapping):
        _not_a_mapping(row, index)
    extra = sorted(str(k) for k in row if k not in columns)
    missing = [c for c in columns if c not in row]
    raise ValidationError(
        f"row {index} does not have the columns of row 0 ({', '.join(columns)}): "
        f"extra {extra!r}, missing {missing!r}; every row of a call carries the same columns",
        field="rows",
    )


def _check_rows(rows: list[Any], offset: int, columns: tuple[str, ...]) -> None:
    width = len(columns)
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping) or len(row) != width or any(c not in row for c in columns):
            _shape_error(row, offset + index, columns)


def _converter(
    table: Table, columns: tuple[str, ...], dialect: Dialect, *, lazy: bool
) -> Callable[[list[Any], int], Rows]:
    """A function turning a chunk of mappings into value sequences, checking each row's shape.

    ``lazy``: an insert on PostgreSQL, whose unprocessed rows are converted as COPY sends them
    (:class:`Values`); the others are converted and checked before anything is sent.

    Only the columns whose type has a bind processor on ``dialect`` are processed; the others pass as
    they are (on the usual int/text/float tables, no Python runs per value beyond the item getter).
    """
    width = len(columns)
    getter: Callable[[Any], Any] = itemgetter(*columns)
    if width == 1:
        single = columns[0]

        def getter(row: Any) -> tuple[Any, ...]:
            return (row[single],)

    processors = [
        (index, processor)
        for index, name in enumerate(columns)
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]

    def convert(chunk: list[Any], offset: int) -> Rows:
        if lazy and not processors and set(map(len, chunk)) <= {width}:
            return Values(chunk, getter, columns, offset)
        return _kept(chunk, offset)

    def _kept(chunk: list[Any], offset: int) -> Rows:
        # One C-level pass checks and converts: every row has `width` keys and the item getter finds
        # each column in it (so the keys are exactly the columns), making the row's tuple. Only a chunk
        # that fails is walked row by row, for the error. The tuples are kept (the key check, the COPY
        # formatter and a retry read them: one getter pass instead of three); with the collector on,
        # those allocations would trigger full collections walking every live object, several times
        # the conversion's cost, and nothing here makes cycles, so the collector waits until it is done.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return _converted(chunk, offset)
        finally:
            if enabled:
                gc.enable()

    def _converted(chunk: list[Any], offset: int) -> Rows:
        values: list[Sequence[Any]] | None = None
        try:
            if set(map(len, chunk)) <= {width}:
                values = list(map(getter, chunk))
        except (KeyError, TypeError):
            values = None
        if values is None:
            _check_rows(chunk, offset, columns)
            values = list(map(getter, chunk))
        if not processors:
            return values
        # Column by column (transpose, map, transpose back): C loops but for the processors themselves.
        transposed: list[Iterable[Any]] = list(zip(*values, strict=True))
        for index, processor in processors:
            transposed[index] = map(processor, transposed[index])
        return list(zip(*transposed, strict=True))

    return convert
