"""Keyset pagination: pages that seek from the last row seen instead of counting rows with OFFSET.

``paginate(session, select(Item), order_by=[Item.created.desc()], after=cursor, limit=50)`` fetches the
rows that come after the cursor's row in that ordering, so page 1,000 costs what page 1 costs (an index
on the sort columns lets the database start right at the boundary). What it promises and how:

- **A total order, NULLs included.** Each sort column is ascending or descending, NULLs last when
  ascending and first when descending (PostgreSQL's default, so its plain indexes serve it) unless
  ``.nulls_first()``/``.nulls_last()`` says otherwise; the placement is spelled out in SQL wherever the
  database's own default differs, so SQLite and PostgreSQL order alike. Unless the ordering already ends
  in something unique (every primary-key column of every table selected from, or a non-null unique
  column of the one table), the missing primary-key columns are appended as the tiebreaker, in the
  direction of the last sort column (so an index on ``(column, id)`` serves both directions);
  a query without a primary key to append must bring its own unique ordering.
- **A predicate that is right around NULLs.** "After the boundary row" is spelled column by column with
  explicit ``IS NULL`` branches (``a > :a OR a IS NULL`` when NULLs sort last, ``a IS NOT NULL`` after a
  NULL when they sort first, ...). A row-value comparison ``(a, b) > (:a, :b)`` is wrong as soon as a
  value is NULL or the directions differ: the bug class that drops rows in sqlakeyset#108. Beside it, a
  redundant range lets the database seek its index to the boundary: a row-value ``>=`` over the leading
  columns for which it is exact (not NULL, same direction); NULL and non-NULL values are two blocks of
  an index, so a page that crosses from one into the other is read as two ranges in turn.
- **Both directions.** ``before=`` walks backwards: the same query in reversed order, reversed back.
- **Stable under writes.** A walk never returns a row twice and never skips a row that existed for the
  whole walk, whatever is inserted or deleted between pages, as long as a row's sort values do not
  change (an update that moves a row across the boundary can show it twice or not at all). Rows inserted
  ahead of the boundary appear; rows inserted behind it do not.

Items are the ORM objects when the statement selects one mapped class (``select(Item)``); otherwise each
row becomes a ``dict`` of its columns by name. :class:`Page` is a pydantic model, so a FastAPI route can
declare ``response_model=Page[ItemOut]`` (``ItemOut`` with ``from_attributes=True`` for ORM objects).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Generator, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select, Table, and_, false, literal, or_, true, tuple_
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnClause, Label, UnaryExpression
from sqlalchemy.sql.selectable import FromClause, Join

from buttress.db._cursor import (
    Cursor,
    Direction,
    KeyLike,
    cursor_key,
    decode_cursor,
    encode_cursor,
    fingerprint,
)
from buttress.db._errors import translate
from buttress.errors import ValidationError

__all__ = ["MAX_LIMIT", "Page", "apaginate", "paginate"]

T = TypeVar("T")
_Parsed = tuple[ColumnElement[Any], bool, bool]
"""An order_by item taken apart: the expression, descending, NULLs last."""
MAX_LIMIT: Final = 1000
"""The largest ``limit``: a page is meant to be read by a person or a client loop, not to be a dump."""
_KEY_LABEL: Final = "_buttress_page_key_"
_SHAPE_CACHE_SIZE: Final = 512
_NULLS_LARGE: Final = {"postgresql": True, "sqlite": False}
"""Whether the dialect sorts NULL after every value when ascending (its default, without NULLS ...)."""
_DESC: Final = (operators.desc_op,)
_ASC: Final = (operators.asc_op,)
_NULLS_FIRST: Final = (operators.nulls_first_op,)
_NULLS_LAST: Final = (operators.nulls_last_op,)


class Page(BaseModel, Generic[T]):
    """One page of rows and the cursors to its neighbours; declare ``response_model=Page[ItemOut]``."""

    model_config = ConfigDict(frozen=True)

    items: list[T] = Field(description="The rows of this page, in the requested order.")
    next: str | None = Field(
        default=None, description="Pass as `after` to get the following page; null on the last page."
    )
    previous: str | None = Field(
        default=None, description="Pass as `before` to get the preceding page; null on the first page."
    )
    has_more: bool = Field(description="Whether rows follow this page.")
    has_previous: bool = Field(description="Whether rows precede this page.")
    limit: int = Field(description="The most rows a page holds.")


@dataclass(frozen=True, slots=True)
class _Key:
    """One sort column: the expression, its direction, where its NULLs go, and whether it can be NULL."""

    expr: ColumnElement[Any]
    descending: bool
    nulls_last: bool
    nullable: bool

    def reversed(self) -> _Key:
        return replace(self, descending=not self.descending, nulls_last=not self.nulls_last)

    def describe(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        return f"{self.expr} {direction} NULLS {'LAST' if self.nulls_last else 'FIRST'}"

    def clause(self, nulls_large: bool | None) -> ColumnElement[Any]:
        ordered: ColumnElement[Any] = self.expr.desc() if self.descending else self.expr.asc()
        native_last = None if nulls_large is None else nulls_large != self.descending
        if self.nullable and native_last != self.nulls_last:
            ordered = ordered.nulls_last() if self.nulls_last else ordered.nulls_first()
        return ordered

    def after(self, value: Any) -> ColumnElement[bool] | None:
        """Rows strictly after ``value`` in this column's order; None when nothing can follow it."""
        if value is None:
            return None if self.nulls_last else self.expr.is_not(None)
        past = self.expr < value if self.descending else self.expr > value
        return or_(past, self.expr.is_(None)) if self.nullable and self.nulls_last else past

    def equal(self, value: Any) -> ColumnElement[bool]:
        return self.expr.is_(None) if value is None else self.expr == value


def _sections(keys: Sequence[_Key], values: Sequence[Any], *, inclusive: bool) -> list[ColumnElement[bool]]:
    """The rows after the boundary ``values`` in the order of ``keys``, as index-seekable parts in order.

    "After" is ``k1 after v1 OR (k1 = v1 AND k2 after v2) OR ...``, with ``=`` as ``IS NULL`` for a NULL
    value (and the boundary row itself if ``inclusive``); it decides. A redundant range beside it lets a
    b-tree start at the boundary. NULL and non-NULL values of one column are two blocks of the index,
    which no single range spans, so when the rows to come cross from one block into the other they are
    read as parts in turn (the rest of this block, then the whole next one).
    """
    if not keys:
        return [true()] if inclusive else []
    lead, value = keys[0], values[0]
    if value is None:  # this block is the NULLs: the rest of them by the other columns, then the values
        parts = [
            and_(lead.expr.is_(None), part) for part in _sections(keys[1:], values[1:], inclusive=inclusive)
        ]
        return [*parts, lead.expr.is_not(None)] if not lead.nulls_last else parts
    parts = [and_(_seek(keys, values), _after(keys, values, inclusive=inclusive))]
    return [*parts, lead.expr.is_(None)] if lead.nullable and lead.nulls_last else parts


def _after(keys: Sequence[_Key], values: Sequence[Any], *, inclusive: bool) -> ColumnElement[bool]:
    branches: list[ColumnElement[bool]] = []
    same: list[ColumnElement[bool]] = []
    for key, value in zip(keys, values, strict=True):
        past = key.after(value)
        if past is not None:
            branches.append(and_(*same, past))
        same.append(key.equal(value))
    if inclusive:
        branches.append(and_(*same))
    return or_(*branches) if branches else false()


def _seek(keys: Sequence[_Key], values: Sequence[Any]) -> ColumnElement[bool]:
    """``(k1, k2, ...) >= (v1, v2, ...)`` over the leading columns a row-value range is exact for.

    Those are the first column (its value is not NULL) and the ones after it that cannot be NULL and run
    the same way: a NULL or a reversed column makes a row comparison wrong, so the range stops before it.
    """
    prefix = [(keys[0], values[0])]
    for key, value in zip(keys[1:], values[1:], strict=True):
        if key.nullable or value is None or key.descending != keys[0].descending:
            break
        prefix.append((key, value))
    if len(prefix) == 1:
        column: ColumnElement[Any] = keys[0].expr
        bound: ColumnElement[Any] = literal(values[0], column.type)
    else:
        column = tuple_(*(key.expr for key, _ in prefix))
        bound = tuple_(*(literal(value, key.expr.type) for key, value in prefix))
    return column <= bound if keys[0].descending else column >= bound


@dataclass(frozen=True, slots=True)
class _Plan:
    """One page request, checked and turned into a statement, and how to turn its rows into a Page."""

    sections: tuple[Select[Any], ...]
    keys: tuple[_Key, ...]
    width: int
    entity: bool
    cursor: Cursor | None
    backward: bool
    limit: int
    fingerprint: str
    key: bytes

    def steps(self) -> Generator[Select[Any], Sequence[Row[Any]], Page[Any]]:
        """The page as a plan: yields each section's statement, is sent its rows, returns the Page.

        One extra row tells whether more follow; a later section is read only if the earlier ones
        left the page short. :func:`paginate` and :func:`apaginate` drive it.
        """
        rows: list[Row[Any]] = []
        for section in self.sections:
            rows += yield section.limit(self.limit + 1 - len(rows))
            if len(rows) > self.limit:
                break
        return self.page(rows)

    def page(self, rows: Sequence[Row[Any]]) -> Page[Any]:
        extra = len(rows) > self.limit
        kept = list(rows[: self.limit])
        if self.backward:
            kept.reverse()
        if self.entity:
            items: list[Any] = [row[0] for row in kept]
        else:
            names = kept[0]._fields[: self.width] if kept else ()
            items = [dict(zip(names, row, strict=False)) for row in kept]
        came = self.cursor is not None
        has_more, has_previous = (came, extra) if self.backward else (extra, came)
        first = tuple(kept[0][self.width :]) if kept else None
        last = tuple(kept[-1][self.width :]) if kept else None
        return Page[Any](
            items=items,
            next=self._link("a", last, has_more),
            previous=self._link("b", first, has_previous),
            has_more=has_more,
            has_previous=has_previous,
            limit=self.limit,
        )

    def _link(self, direction: Direction, boundary: tuple[Any, ...] | None, exists: bool) -> str | None:
        """The cursor to the neighbouring page; on an empty page, one that includes the cursor's row."""
        if not exists:
            return None
        if boundary is not None:
            cursor = Cursor(direction, boundary, self.fingerprint)
        elif self.cursor is not None:
            cursor = Cursor(direction, self.cursor.values, self.fingerprint, inclusive=True)
        else:  # pragma: no cover - an empty first page has no neighbours
            return None
        return encode_cursor(cursor, self.key)


def plan_page(
    stmt: object,
    *,
    order_by: Sequence[Any],
    after: str | None,
    before: str | None,
    limit: int,
    key: KeyLike | None,
    dialect: Dialect,
) -> _Plan:
    """Check every argument (ValidationError naming it) and build the statement of the page."""
    statement = _check_statement(stmt)
    _check_limit(limit)
    if after is not None and before is not None:
        raise ValidationError(
            "after and before are both set; pass after= to page forward or before= to page backward, "
            "not both",
            field="before",
        )
    keys, shape = _analyse(statement, order_by)
    printed = shape.fingerprint
    signing = cursor_key(key)
    cursor = None
    field, text = ("before", before) if before is not None else ("after", after)
    if text is not None:
        cursor = decode_cursor(text, field=field, key=signing, fingerprint=printed, size=len(keys))
        wanted = "b" if field == "before" else "a"
        if cursor.direction != wanted:
            other = "after" if field == "before" else "before"
            raise ValidationError(
                f"{field} got a {'next' if cursor.direction == 'a' else 'previous'} cursor; pass a page's "
                f"next cursor as after= and its previous cursor as before= (this one belongs in {other}=)",
                field=field,
                error_code="cursor_direction",
            )
    backward = field == "before" and cursor is not None
    walk = tuple(k.reversed() for k in keys) if backward else keys
    nulls_large = _NULLS_LARGE.get(dialect.name)
    paged = statement.add_columns(*(k.expr.label(f"{_KEY_LABEL}{i}") for i, k in enumerate(keys)))
    paged = paged.order_by(*(k.clause(nulls_large) for k in walk))
    if cursor is None:
        sections: tuple[Select[Any], ...] = (paged,)
    else:
        parts = _sections(walk, cursor.values, inclusive=cursor.inclusive)
        sections = tuple(paged.where(part) for part in parts)
    return _Plan(
        sections=sections,
        keys=keys,
        width=shape.width,
        entity=shape.entity,
        cursor=cursor,
        backward=backward,
        limit=limit,
        fingerprint=printed,
        key=signing,
    )


def paginate(
    session: Session,
    stmt: Select[Any],
    *,
    order_by: Sequence[Any],
    after: str | None = None,
    before: str | None = None,
    limit: int = 50,
    key: KeyLike | None = None,
) -> Page[Any]:
    """One page of ``stmt`` in ``order_by`` order: the first, or the one ``after``/``before`` a cursor.

    ``key`` signs and checks the cursors (default: the settings' ``db.cursor_key`` or
    ``security.secret_key``). A bad argument or cursor is a ValidationError naming it.
    """
    dialect = session.get_bind().dialect
    plan = plan_page(
        stmt, order_by=order_by, after=after, before=before, limit=limit, key=key, dialect=dialect
    )
    steps = plan.steps()
    try:
        statement = next(steps)
        while True:
            statement = steps.send(session.execute(statement).all())
    except StopIteration as done:
        page: Page[Any] = done.value
        return page
    except DBAPIError as exc:
        raise translate(exc, backend=dialect.name) from exc


async def apaginate(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    order_by: Sequence[Any],
    after: str | None = None,
    before: str | None = None,
    limit: int = 50,
    key: KeyLike | None = None,
) -> Page[Any]:
    """Async :func:`paginate`."""
    dialect = session.sync_session.get_bind().dialect
    plan = plan_page(
        stmt, order_by=order_by, after=after, before=before, limit=limit, key=key, dialect=dialect
    )
    steps = plan.steps()
    try:
        statement = next(steps)
        while True:
            statement = steps.send((await session.execute(statement)).all())
    except StopIteration as done:
        page: Page[Any] = done.value
        return page
    except DBAPIError as exc:
        raise translate(exc, backend=dialect.name) from exc


# -- checks and the ordering ---------------------------------------------------------------------------


def _check_statement(stmt: object) -> Select[Any]:
    if not isinstance(stmt, Select):
        raise ValidationError(
            f"stmt must be a select(), got {type(stmt).__name__}; e.g. paginate(session, select(Item), ...)",
            field="stmt",
        )
    for attribute, what in (
        ("_order_by_clauses", "order_by"),
        ("_limit_clause", "limit"),
        ("_offset_clause", "offset"),
    ):
        present = getattr(stmt, attribute, None)
        if present is not None and (not isinstance(present, tuple) or present):
            raise ValidationError(
                f"stmt already has {what}(); the page sets the order and the limit itself: drop "
                f".{what}(...) from the statement and pass the ordering as order_by=[...]",
                field="stmt",
            )
    return stmt


def _check_limit(limit: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(
            f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}; e.g. limit=50",
            field="limit",
        )


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a statement and its ordering imply beyond the order_by items themselves (compiling is slow)."""

    nullable: tuple[bool, ...]
    tiebreakers: tuple[_Key, ...]
    fingerprint: str
    width: int
    entity: bool


class _Shapes:
    """Shapes by SQLAlchemy cache key: one per distinct query structure, as SQLAlchemy caches its SQL.

    The cache key leaves out bound values, and a shape holds none of them (only flags, the fingerprint
    and primary-key columns), so two statements that differ only in their parameters share a shape.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._shapes: OrderedDict[Hashable, _Shape] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> _Shape | None:
        with self._lock:
            shape = self._shapes.get(key)
            if shape is not None:
                self._shapes.move_to_end(key)
            return shape

    def put(self, key: Hashable, shape: _Shape) -> None:
        with self._lock:
            self._shapes[key] = shape
            if len(self._shapes) > self._size:
                self._shapes.popitem(last=False)


_SHAPES: Final = _Shapes(_SHAPE_CACHE_SIZE)


def _analyse(statement: Select[Any], order_by: Sequence[Any]) -> tuple[tuple[_Key, ...], _Shape]:
    """The sort keys of ``order_by``, with the primary key appended when they are not unique."""
    if isinstance(order_by, str | bytes) or not isinstance(order_by, Sequence) or not order_by:
        raise ValidationError(
            "order_by must be a non-empty list of columns, each optionally .asc() or .desc(); "
            "e.g. order_by=[Item.created.desc(), Item.id]",
            field="order_by",
        )
    parsed = [_parse(item) for item in order_by]
    memo = _memo_key(statement, parsed)
    shape = None if memo is None else _SHAPES.get(memo)
    if shape is None:
        shape = _shape(statement, parsed)
        # An anonymous alias has a structural cache key, so another alias object could share it: only
        # columns of real tables may be handed to the next statement of the same shape.
        if memo is not None and all(isinstance(k.expr.table, Table) for k in shape.tiebreakers):
            _SHAPES.put(memo, shape)
    keys = tuple(
        _Key(expr, descending, nulls_last, nullable)
        for (expr, descending, nulls_last), nullable in zip(parsed, shape.nullable, strict=True)
    )
    return (*keys, *shape.tiebreakers), shape


def _memo_key(statement: Select[Any], parsed: Sequence[_Parsed]) -> Hashable | None:
    parts: list[Any] = []
    for element, descending, nulls_last in ((statement, False, False), *parsed):
        cache_key = element._generate_cache_key()
        if cache_key is None:
            return None
        parts.append((cache_key.key, descending, nulls_last))
    return tuple(parts)


def _shape(statement: Select[Any], parsed: Sequence[_Parsed]) -> _Shape:
    outer = any(_has_outer_join(frm) for frm in statement.get_final_froms())
    keys = [
        _Key(expr, descending, nulls_last, nullable=outer or not _not_null(expr))
        for expr, descending, nulls_last in parsed
    ]
    tiebreakers = _tiebreakers(statement, keys, outer)
    return _Shape(
        nullable=tuple(k.nullable for k in keys),
        tiebreakers=tuple(tiebreakers),
        fingerprint=fingerprint(str(statement), *(k.describe() for k in (*keys, *tiebreakers))),
        width=len(statement.column_descriptions),
        entity=_selects_one_entity(statement),
    )


def _not_null(element: ColumnElement[Any]) -> bool:
    return isinstance(element, ColumnClause) and getattr(element, "nullable", True) is False


def _parse(item: Any) -> _Parsed:
    """The expression, direction and NULL placement of one order_by item (``.desc().nulls_first()``...)."""
    element = _unwrap(item)
    descending: bool | None = None
    nulls_last: bool | None = None
    while isinstance(element, UnaryExpression) and element.modifier is not None:
        modifier = element.modifier
        if modifier in _DESC or modifier in _ASC:
            descending = modifier in _DESC if descending is None else descending
        elif modifier in _NULLS_FIRST or modifier in _NULLS_LAST:
            nulls_last = modifier in _NULLS_LAST if nulls_last is None else nulls_last
        else:
            break
        element = _unwrap(element.element)
    if isinstance(element, Label):
        element = element.element
    if not isinstance(element, ColumnElement):
        raise ValidationError(
            f"order_by items must be columns or SQL expressions, got {type(item).__name__}; "
            "e.g. order_by=[Item.created.desc(), Item.id] (names as strings are not accepted)",
            field="order_by",
        )
    descending = bool(descending)
    return element, descending, (not descending) if nulls_last is None else nulls_last


def _unwrap(item: Any) -> Any:
    clause = getattr(item, "__clause_element__", None)
    return clause() if callable(clause) else item


def _has_outer_join(frm: FromClause) -> bool:
    if isinstance(frm, Join):
        return bool(frm.isouter or frm.full) or _has_outer_join(frm.left) or _has_outer_join(frm.right)
    return False


def _identity(column: Any) -> tuple[int, str] | None:
    table = getattr(column, "table", None)
    if isinstance(column, ColumnClause) and table is not None:
        return (id(table), column.name)
    return None


def _tiebreakers(statement: Select[Any], keys: Sequence[_Key], outer: bool) -> list[_Key]:
    """The primary-key columns the ordering lacks, so that no two rows sort as equal.

    They follow the last column's direction, so an index on ``(sort column, id)`` serves the order
    whether it runs ascending or descending.
    """
    descending = keys[-1].descending
    froms = statement.get_final_froms()
    present = {_identity(k.expr) for k in keys} - {None}
    if len(froms) == 1 and not outer:
        for key in keys:
            column = key.expr
            unique = isinstance(column, ColumnClause) and bool(getattr(column, "unique", False))
            if unique and not key.nullable and getattr(column, "table", None) is froms[0]:
                return []
    missing: list[_Key] = []
    for frm in froms:
        primary = list(frm.primary_key)
        if not primary:
            raise ValidationError(
                f"order_by is not known to be unique and {frm} has no primary key to break ties with; "
                "end order_by with a unique column so no two rows sort as equal",
                field="order_by",
            )
        for column in primary:
            if _identity(column) not in present:
                present.add(_identity(column))
                missing.append(_Key(column, descending, not descending, outer or bool(column.nullable)))
    return missing


def _selects_one_entity(statement: Select[Any]) -> bool:
    described = statement.column_descriptions
    return (
        len(described) == 1
        and described[0].get("entity") is not None
        and described[0]["expr"] is described[0]["entity"]
    )
