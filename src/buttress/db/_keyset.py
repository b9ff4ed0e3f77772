"""The SQL of a keyset walk: sort keys, their ORDER BY, and the NULL-safe "after the boundary" predicate.

A :class:`SortKey` is one column with its direction and NULL placement. :func:`sections_after` turns
a boundary row into the predicate that selects the rows after it, split into parts that a b-tree can
each seek to; :class:`Walk` holds that SQL for one shape and direction, built on bind placeholders
once, so the boundary values travel as parameters and SQLAlchemy compiles each variant once.
:class:`Memo` keeps such things by SQLAlchemy cache key.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import ColumnElement, Table, and_, bindparam, false, or_, true, tuple_

__all__ = ["KEY_LABEL", "Memo", "SortKey", "Walk", "make_walk", "reusable", "sections_after"]

V = TypeVar("V")
KEY_LABEL: Final = "_buttress_page_key_"
"""The label of each sort key's column in the page's SELECT, and the name of its boundary parameter."""


@dataclass(frozen=True, slots=True)
class SortKey:
    """One sort column: the expression, its direction, where its NULLs go, and whether it can be NULL."""

    expr: ColumnElement[Any]
    descending: bool
    nulls_last: bool
    nullable: bool

    def reversed(self) -> SortKey:
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


def sections_after(
    keys: Sequence[SortKey], values: Sequence[Any], *, inclusive: bool
) -> list[ColumnElement[bool]]:
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
            and_(lead.expr.is_(None), part)
            for part in sections_after(keys[1:], values[1:], inclusive=inclusive)
        ]
        return [*parts, lead.expr.is_not(None)] if not lead.nulls_last else parts
    parts = [and_(seek_bound(keys, values), after_boundary(keys, values, inclusive=inclusive))]
    return [*parts, lead.expr.is_(None)] if lead.nullable and lead.nulls_last else parts


def after_boundary(keys: Sequence[SortKey], values: Sequence[Any], *, inclusive: bool) -> ColumnElement[bool]:
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


def seek_bound(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
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
        bound: ColumnElement[Any] = values[0]
    else:
        column = tuple_(*(key.expr for key, _ in prefix))
        bound = tuple_(*(value for _, value in prefix))
    return column <= bound if keys[0].descending else column >= bound


class Memo(Generic[V]):
    """Values by SQLAlchemy cache key: one per distinct query structure, as SQLAlchemy caches its SQL.

    The cache key leaves out bound values; what is kept holds none of them (flags, the fingerprint,
    columns of real tables, SQL built on bind placeholders), so statements that differ only in their
    parameters share it. Bounded: the least recently used goes first.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._values[key] = value
            if len(self._values) > self._size:
                self._values.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Walk:
    """The SQL of one walk direction over one shape, built once on bind placeholders.

    ``parts`` holds the sections per (inclusive, which boundary values are NULL); the boundary values
    travel as execution parameters, so SQLAlchemy compiles each variant once.
    """

    labels: tuple[ColumnElement[Any], ...]
    order: tuple[ColumnElement[Any], ...]
    placeholders: tuple[ColumnElement[Any], ...]
    keys: tuple[SortKey, ...]
    parts: dict[tuple[bool, tuple[bool, ...]], tuple[ColumnElement[bool], ...]]

    def sections(self, values: Sequence[Any], *, inclusive: bool) -> tuple[ColumnElement[bool], ...]:
        nulls = tuple(value is None for value in values)
        made = self.parts.get((inclusive, nulls))
        if made is None:
            marks = [None if null else mark for null, mark in zip(nulls, self.placeholders, strict=True)]
            made = self.parts[(inclusive, nulls)] = tuple(
                sections_after(self.keys, marks, inclusive=inclusive)
            )
        return made


def make_walk(keys: tuple[SortKey, ...], walk: tuple[SortKey, ...], nulls_large: bool | None) -> Walk:
    return Walk(
        labels=tuple(k.expr.label(f"{KEY_LABEL}{i}") for i, k in enumerate(keys)),
        order=tuple(k.clause(nulls_large) for k in walk),
        placeholders=tuple(bindparam(f"{KEY_LABEL}{i}", type_=k.expr.type) for i, k in enumerate(walk)),
        keys=walk,
        parts={},
    )


def reusable(keys: Sequence[SortKey]) -> bool:
    """Whether SQL built on ``keys`` may serve the next statement of the same cache key.

    Only columns of real tables: an anonymous alias has a structural cache key (another alias object
    could share it), and an expression's own bound values are not part of the cache key.
    """
    return all(isinstance(getattr(k.expr, "table", None), Table) for k in keys)
