"""Retention rules: which files a cleanup archives or deletes, and the plans that find them in batches.

A rule has an action (``archive`` or ``delete``) and at least one condition: ``max_age`` (seconds since
the file was created), ``idle`` (seconds since it was last read) or ``high_water`` (storage pressure);
``tag`` and ``owner`` narrow it. A rule over ``state="archived"`` with ``action="delete"`` is the purge.

Pressure: while the measure is over ``high_water``, files go least recently read first until it is under
``low_water`` (default: ``high_water`` less a tenth of it). Marks up to 1 are fractions of the store's
global quota (``files.quota``; a store without one refuses such a rule), larger ones are bytes, so a store
without a quota can still say "keep under 50 GB". An archive rule frees the main store, so it measures the
stored bytes; a delete rule frees quota, so it measures the quota counter (archived bytes included).

Candidates are read ``BATCH`` rows at a time, in the order of the indexes ``(state, created_at)`` and
``(state, accessed_at)`` with a keyset cursor, so a cleanup of 100k files never holds them all at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import bindparam, text

from buttress.db import Plan, Step
from buttress.errors import ValidationError
from buttress.files._info import ALIASED_COLUMNS, COLUMNS, FileState, StoredFile, stored_file
from buttress.files._reservations import scopes_of

__all__ = [
    "BATCH",
    "Action",
    "Retention",
    "archive_batch_plan",
    "candidates_plan",
    "check_rules",
    "delete_batch_plan",
    "format_seconds",
]

Action = Literal["archive", "delete"]
BATCH: Final = 500
"""Candidates read (and deleted) per transaction."""
_STATES: Final = ("stored", "archived")
_ACTIONS: Final = ("archive", "delete")
_UNITS: Final = (("d", 86400), ("h", 3600), ("m", 60))


def _seconds(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValidationError(
            f"{field} must be a number of seconds >= 0, got {value!r}; e.g. {field}=30 * 86400",
            field=field,
        )
    return float(value)


def _mark(value: object, field: str) -> float | None:
    if value is None:
        return None
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValidationError(
            f"{field} must be a fraction of the quota (0 < x <= 1) or a number of bytes (> 1), "
            f"got {value!r}; e.g. {field}=0.9",
            field=field,
        )
    return float(number)


def format_seconds(seconds: float) -> str:
    """``2592000`` as ``30d``: the largest unit that divides it, else seconds."""
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Retention:
    """One retention rule (see the module docstring); checked when made, naming the field at fault."""

    action: Action = "archive"
    max_age: float | None = None
    idle: float | None = None
    tag: str | None = None
    owner: str | None = None
    high_water: float | None = None
    low_water: float | None = None
    state: FileState = "stored"

    def __post_init__(self) -> None:
        if self.action not in _ACTIONS:
            raise ValidationError(
                f"action must be 'archive' or 'delete', got {self.action!r}", field="action"
            )
        if self.state not in _STATES:
            raise ValidationError(f"state must be 'stored' or 'archived', got {self.state!r}", field="state")
        if self.state == "archived" and self.action == "archive":
            raise ValidationError(
                "a rule over archived files can only delete them (the purge): use action='delete'",
                field="action",
            )
        for name in ("tag", "owner"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValidationError(f"{name} must be a non-empty string or None, got {value!r}", field=name)
        object.__setattr__(self, "max_age", _seconds(self.max_age, "max_age"))
        object.__setattr__(self, "idle", _seconds(self.idle, "idle"))
        self._check_marks()
        if self.max_age is None and self.idle is None and self.high_water is None:
            raise ValidationError(
                "a rule needs a condition: max_age, idle or high_water (tag and owner only narrow it); "
                "e.g. Retention(max_age=30 * 86400)",
                field="max_age",
            )

    def _check_marks(self) -> None:
        high = _mark(self.high_water, "high_water")
        low = _mark(self.low_water, "low_water")
        if low is not None and high is None:
            raise ValidationError("low_water needs a high_water to start from", field="low_water")
        if high is not None:
            if high <= 1 and low is not None and low > 1:
                raise ValidationError(
                    "high_water is a fraction of the quota, so low_water must be one too (0 < x <= 1)",
                    field="low_water",
                )
            if high > 1 and low is not None and low <= 1:
                raise ValidationError(
                    "high_water is in bytes, so low_water must be in bytes too (> 1)", field="low_water"
                )
            if low is None:
                low = high * 0.9
            if low > high:
                raise ValidationError(
                    f"low_water ({low:g}) must not be above high_water ({high:g}): cleaning stops under it",
                    field="low_water",
                )
        object.__setattr__(self, "high_water", high)
        object.__setattr__(self, "low_water", low)

    @property
    def pressure(self) -> bool:
        """Whether the rule acts only under storage pressure (least recently read first)."""
        return self.high_water is not None

    @property
    def needs_quota(self) -> bool:
        """Whether its marks are fractions of the global quota."""
        return self.high_water is not None and self.high_water <= 1

    @property
    def kind(self) -> Literal["archive", "delete", "purge"]:
        """What the rule does to a file: ``purge`` is deleting an archived one."""
        return "purge" if self.state == "archived" else self.action

    def describe(self) -> str:
        """A short sentence for reports: ``archive stored files older than 30d tagged 'raw'``."""
        parts = [f"{self.action} {self.state} files"]
        if self.max_age is not None:
            parts.append(f"older than {format_seconds(self.max_age)}")
        if self.idle is not None:
            parts.append(f"unread for {format_seconds(self.idle)}")
        if self.tag is not None:
            parts.append(f"tagged {self.tag!r}")
        if self.owner is not None:
            parts.append(f"of {self.owner!r}")
        if self.high_water is not None and self.low_water is not None:
            unit = "" if self.high_water > 1 else " of the quota"
            marks = f"from {_shown(self.high_water)} down to {_shown(self.low_water)}{unit}"
            parts.append(f"least recently read first, {marks}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the rule's fields."""
        return {
            "action": self.action,
            "state": self.state,
            "max_age": self.max_age,
            "idle": self.idle,
            "tag": self.tag,
            "owner": self.owner,
            "high_water": self.high_water,
            "low_water": self.low_water,
        }


def _shown(mark: float) -> str:
    return f"{mark:.0%}" if mark <= 1 else f"{int(mark)} bytes"


def check_rules(
    rules: object, *, field: str = "rules", quota: int | None = None, quota_known: bool = True
) -> tuple[Retention, ...]:
    """``rules`` as a tuple of :class:`Retention`; a rule measured against a missing quota is refused
    (unless ``quota_known`` is False: the store that will apply them is not known yet)."""
    if isinstance(rules, Retention):
        rules = (rules,)
    if isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
        raise ValidationError(
            f"{field} must be a list of Retention rules, got {type(rules).__name__}; "
            f"e.g. [Retention(max_age=30 * 86400)]",
            field=field,
        )
    for rule in rules:
        if not isinstance(rule, Retention):
            raise ValidationError(
                f"{field} must hold Retention rules, got {type(rule).__name__}", field=field
            )
        if rule.needs_quota and quota is None and quota_known:
            raise ValidationError(
                f"{rule.describe()}: a high_water up to 1 is a fraction of files.quota, and this store has "
                "no quota; set files.quota or give high_water in bytes (e.g. 50e9)",
                field="high_water",
            )
    return tuple(rules)


def _order(rule: Retention) -> str:
    """The column candidates come in: by age, unless the rule is about reads or pressure."""
    return "created_at" if rule.max_age is not None and not rule.pressure else "accessed_at"


def _conditions(rule: Retention, now: float) -> tuple[list[str], dict[str, Any]]:
    where = ["f.state = :state"]
    params: dict[str, Any] = {"state": rule.state}
    if rule.max_age is not None:
        where.append("f.created_at < :created_before")
        params["created_before"] = now - rule.max_age
    if rule.idle is not None:
        where.append("f.accessed_at < :accessed_before")
        params["accessed_before"] = now - rule.idle
    if rule.owner is not None:
        where.append("f.owner = :owner")
        params["owner"] = rule.owner
    if rule.tag is not None:
        where.append("EXISTS (SELECT 1 FROM buttress_file_tags t WHERE t.file_id = f.id AND t.tag = :tag)")
        params["tag"] = rule.tag
    return where, params


def cursor_of(rule: Retention, found: StoredFile) -> tuple[float, str]:
    """Where the next batch of ``rule``'s candidates starts (after ``found``)."""
    return (found.created_at if _order(rule) == "created_at" else found.accessed_at), found.id


def candidates_plan(
    rule: Retention, now: float, after: tuple[float, str] | None = None, batch: int = BATCH
) -> Plan[list[StoredFile]]:
    """The next ``batch`` files ``rule`` applies to at ``now``, oldest (or least recently read) first.

    The files come without their tags (a rule's tag is matched in SQL; reports do not show tags).
    """
    where, params = _conditions(rule, now)
    column = _order(rule)
    if after is not None:
        where.append(f"(f.{column} > :after_at OR (f.{column} = :after_at AND f.id > :after_id))")
        params["after_at"], params["after_id"] = after
    params["batch"] = batch
    rows = yield Step(
        text(
            f"SELECT {ALIASED_COLUMNS} FROM buttress_files f WHERE {' AND '.join(where)} "  # noqa: S608 - fixed fragments
            f"ORDER BY f.{column}, f.id LIMIT :batch"
        ),
        params,
        rows=True,
    )
    return [stored_file(row) for row in rows]


_LOCK = text(
    "SELECT id FROM buttress_files WHERE id IN :ids AND state = :state ORDER BY id FOR UPDATE"
).bindparams(bindparam("ids", expanding=True))
_DROP_TAGS = text("DELETE FROM buttress_file_tags WHERE file_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_UNCOUNT = text(
    "UPDATE buttress_file_usage SET used = used - :size, files = files - :files WHERE scope = :scope"
)


def delete_batch_plan(
    ids: Sequence[str], state: FileState, accessed_before: float | None, *, postgres: bool
) -> Plan[list[StoredFile]]:
    """Delete the rows of ``ids`` still in ``state`` (and still unread since ``accessed_before``), take
    their bytes out of the counters, and return them: a row another process deleted, archived, restored
    or read meanwhile is not returned, so two cleanups never both delete one file."""
    guard = "" if accessed_before is None else " AND accessed_at < :accessed_before"
    params: dict[str, Any] = {"ids": list(ids), "state": state}
    if accessed_before is not None:
        params["accessed_before"] = accessed_before
    if postgres:  # lock the rows in one order, so two batch deletes wait for each other, never deadlock
        yield Step(_LOCK, {"ids": list(ids), "state": state}, rows=True)
    statement = f"DELETE FROM buttress_files WHERE id IN :ids AND state = :state{guard} RETURNING {COLUMNS}"  # noqa: S608
    rows = yield Step(
        text(statement).bindparams(bindparam("ids", expanding=True)),
        params,
        rows=True,
    )
    gone = [stored_file(row) for row in rows]
    if not gone:
        return gone
    yield Step(_DROP_TAGS, {"ids": [found.id for found in gone]})
    counts: dict[str, list[int]] = {}
    for found in gone:
        for scope in scopes_of(found.owner):
            tally = counts.setdefault(scope, [0, 0])
            tally[0] += found.size
            tally[1] += 1
    yield Step(
        _UNCOUNT,
        [{"scope": scope, "size": size, "files": n} for scope, (size, n) in sorted(counts.items())],
    )
    return gone


_ARCHIVED = text(
    "UPDATE buttress_files SET state = 'archived', archive_key = :archive_key, compressed = :compressed, "
    "archived_at = :now WHERE id = :id AND state = 'stored'"
)


def archive_batch_plan(copied: Sequence[tuple[str, str]], compressed: bool, now: float) -> Plan[set[str]]:
    """Mark each ``(file_id, archive_key)`` archived if it is still stored; the ids this call moved."""
    won: set[str] = set()
    for file_id, archive_key in copied:
        count = yield Step(
            _ARCHIVED, {"archive_key": archive_key, "compressed": int(compressed), "now": now, "id": file_id}
        )
        if count:
            won.add(file_id)
    return won
