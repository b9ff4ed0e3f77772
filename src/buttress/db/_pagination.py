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

from collections.abc import Generator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select
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
from buttress.db._keyset import KEY_LABEL, Memo, SortKey, Walk, make_walk, reusable
from buttress.errors import ValidationError

__all__ = ["MAX_LIMIT", "Page", "apaginate", "paginate"]

T = TypeVar("T")
_Parsed = tuple[ColumnElement[Any], bool, bool]
"""An order_by item taken apart: the expression, descending, NULLs last."""
MAX_LIMIT: Final = 1000
"""The largest ``limit``: a page is meant to be read by a person or a client loop, not to be a dump."""
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
class _Plan:
    """One page request, checked and turned into a statement, and how to turn its rows into a Page."""

    sections: tuple[Select[Any], ...]
    params: dict[str, Any]
    keys: tuple[SortKey, ...]
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
    nulls_large = _NULLS_LARGE.get(dialect.name)
    reuse = shape.memo is not None and reusable(keys)
    walk_key = (shape.memo, dialect.name, backward)
    sql = _WALKS.get(walk_key) if reuse else None
    if sql is None:
        sql = make_walk(keys, tuple(k.reversed() for k in keys) if backward else keys, nulls_large)
        if reuse:
            _WALKS.put(walk_key, sql)
    paged = statement.add_columns(*sql.labels).order_by(*sql.order)
    params: dict[str, Any] = {}
    if cursor is None:
        sections: tuple[Select[Any], ...] = (paged,)
    else:
        parts = sql.sections(cursor.values, inclusive=cursor.inclusive)
        sections = tuple(paged.where(part) for part in parts)
        params = {f"{KEY_LABEL}{i}": v for i, v in enumerate(cursor.values) if v is not None}
    return _Plan(
        sections=sections,
        params=params,
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
            statement = steps.send(session.execute(statement, plan.params).all())
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
            statement = steps.send((await session.execute(statement, plan.params)).all())
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

    memo: Hashable | None
    nullable: tuple[bool, ...]
    tiebreakers: tuple[SortKey, ...]
    fingerprint: str
    width: int
    entity: bool


_SHAPES: Final = Memo["_Shape"](_SHAPE_CACHE_SIZE)
_WALKS: Final = Memo[Walk](_SHAPE_CACHE_SIZE)


def _analyse(statement: Select[Any], order_by: Sequence[Any]) -> tuple[tuple[SortKey, ...], _Shape]:
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
        shape = _shape(statement, parsed, memo)
        # An anonymous alias has a structural cache key, so another alias object could share it: only
        # columns of real tables may be handed to the next statement of the same shape.
        if memo is not None and reusable(shape.tiebreakers):
            _SHAPES.put(memo, shape)
    keys = tuple(
        SortKey(expr, descending, nulls_last, nullable)
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


def _shape(statement: Select[Any], parsed: Sequence[_Parsed], memo: Hashable | None) -> _Shape:
    outer = any(_has_outer_join(frm) for frm in statement.get_final_froms())
    keys = [
        SortKey(expr, descending, nulls_last, nullable=outer or not _not_null(expr))
        for expr, descending, nulls_last in parsed
    ]
    tiebreakers = _tiebreakers(statement, keys, outer)
    return _Shape(
        memo=memo,
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


def _tiebreakers(statement: Select[Any], keys: Sequence[SortKey], outer: bool) -> list[SortKey]:
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
    missing: list[SortKey] = []
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
                missing.append(SortKey(column, descending, not descending, outer or bool(column.nullable)))
    return missing


def _selects_one_entity(statement: Select[Any]) -> bool:
    described = statement.column_descriptions
    return (
        len(described) == 1
        and described[0].get("entity") is not None
        and described[0]["expr"] is described[0]["entity"]
    )
