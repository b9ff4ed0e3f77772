"""Index advice as values: the statements to advise on, the candidates a scan suggests, and the advice.

A :class:`Sample` is one statement as an application runs it (SQL, its parameters, how often and how long).
:func:`candidates` turns what the plan says a table is searched by (:class:`~buttress.db._plans.ScanUse`)
into index column lists, most specific first: the equality columns (join keys count as equality, since
the inner side of a nested loop looks rows up by them), then one range column, or the sort columns under
a ``LIMIT``; then each column alone. A candidate whose columns an existing index already leads with is
dropped. :class:`IndexAdvice` is what survives, with a deterministic index name of at most 63 characters
and the DDL to run. Nothing here holds a parameter value: statements are kept only in normalised form.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from buttress.db._plans import ScanUse
from buttress.errors import ValidationError

__all__ = [
    "AdviceReport",
    "IndexAdvice",
    "Sample",
    "Skipped",
    "candidates",
    "covered",
    "index_ddl",
    "index_name",
    "normalise",
    "quote_ident",
]

MAX_IDENTIFIER: Final = 63
_SIMPLE: Final = re.compile(r"^[a-z_][a-z0-9_$]*$")
_TOKENS: Final = re.compile(
    r"""'(?:[^']|'')*'          # string literal
      | "(?:[^"]|"")*"          # quoted name
      | %\(\w+\)s | %s | \$\d+ | \? | (?<!:):[A-Za-z_]\w*   # parameter markers
      | \b\d+(?:\.\d+)?\b       # number
      | \s+
    """,
    re.VERBOSE,
)
_IN_LIST: Final = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_MAX_COLUMNS: Final = 4


@dataclass(frozen=True, slots=True)
class Sample:
    """One statement to advise on: its SQL, its parameters, how often it ran and for how long in total.

    ``params`` are bound as the statement would be: a mapping for ``%(name)s`` (psycopg) or ``:name``
    markers, a sequence for ``%s`` or ``?``. They are used to plan the statement and never kept in advice.
    ``fingerprint`` names the statement in advice (default: the SQL with literals and parameters
    normalised to ``?``), so a query tracker can pass its own.
    """

    sql: str
    params: Mapping[str, Any] | Sequence[Any] | None = None
    calls: int = 1
    total_seconds: float = 0.0
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise ValidationError(
                "sql must be a non-empty SQL string; e.g. Sample('SELECT * FROM orders WHERE id = :id', "
                "{'id': 1})",
                field="sql",
            )
        params = self.params
        if params is not None and (
            isinstance(params, str | bytes) or not isinstance(params, Mapping | Sequence)
        ):
            raise ValidationError(
                f"params must be a mapping, a sequence or None, got {type(params).__name__}; "
                "e.g. {'id': 1} for :id or (1,) for %s",
                field="params",
            )
        if isinstance(self.calls, bool) or not isinstance(self.calls, int) or self.calls < 1:
            raise ValidationError(f"calls must be an int >= 1, got {self.calls!r}", field="calls")
        if not isinstance(self.total_seconds, int | float) or self.total_seconds < 0:
            raise ValidationError(
                f"total_seconds must be a number >= 0, got {self.total_seconds!r}", field="total_seconds"
            )

    @property
    def statement(self) -> str:
        """The name advice gives this statement: its fingerprint, free of literals and parameters."""
        return self.fingerprint or normalise(self.sql)


@dataclass(frozen=True, slots=True)
class IndexAdvice:
    """One index worth creating, the statement(s) it speeds up and what the planner said about it.

    ``verified`` is True when PostgreSQL's planner, given the index as a hypopg hypothetical index, put
    the statement's total cost at ``cost_after`` (``ratio`` = after/before, at most the advisor's
    ``max_ratio``). Unverified advice (no hypopg, or SQLite) has ``cost_after`` and ``ratio`` of None and
    says why in ``reason``. ``calls`` and ``total_seconds`` add up the statements' own figures, for ranking.
    """

    schema: str | None
    table: str
    columns: tuple[str, ...]
    name: str
    ddl: str
    verified: bool
    reason: str
    cost_before: float | None
    cost_after: float | None
    ratio: float | None
    statements: tuple[str, ...]
    calls: int
    total_seconds: float

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    @property
    def text(self) -> str:
        """Two lines for a terminal: the DDL, then the evidence."""
        if self.verified and self.cost_before is not None and self.cost_after is not None:
            evidence = (
                f"verified: cost {self.cost_before:.1f} -> {self.cost_after:.1f} "
                f"({(1 - (self.ratio or 0)) * 100:.0f}% less)"
            )
        else:
            evidence = f"UNVERIFIED: {self.reason}"
        seconds = f"{self.total_seconds:.3f}s total" if self.total_seconds else "time not given"
        usage = f"{len(self.statements)} statement(s), {self.calls} call(s), {seconds}"
        return f"{self.ddl};\n  -- {evidence}; {usage}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A statement the advisor could not plan, and why (never with its parameter values)."""

    statement: str
    reason: str


@dataclass(frozen=True, slots=True)
class AdviceReport:
    """What :meth:`~buttress.db.Database.advise` found: the advice, ranked, and the statements it skipped."""

    backend: str
    hypopg: bool
    indexes: tuple[IndexAdvice, ...]
    skipped: tuple[Skipped, ...] = field(default=())
    seconds: float = 0.0

    @property
    def text(self) -> str:
        """The report for a terminal: one block per index, then the skipped statements."""
        if not self.indexes:
            lines = ["No index advice: every statement is served well enough by the indexes it has."]
        else:
            lines = [advice.text for advice in self.indexes]
        lines.extend(f"skipped: {skip.statement[:120]} ({skip.reason})" for skip in self.skipped)
        return "\n".join(lines)


def normalise(sql: str) -> str:
    """``sql`` with literals and parameter markers as ``?``, ``IN`` lists folded and spaces collapsed."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.isspace():
            return " "
        return token if token.startswith('"') else "?"

    folded = _TOKENS.sub(replace, sql.strip().rstrip(";"))
    return _IN_LIST.sub("(?)", folded).strip()


def _unique(columns: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(columns))


def candidates(use: ScanUse) -> list[tuple[str, ...]]:
    """Index column lists for one scan, most specific first (the first is the unverified pick)."""
    equality = _unique([*use.equality, *use.joins])
    out: list[tuple[str, ...]] = []

    def add(columns: Iterable[str]) -> None:
        unique = _unique(columns)[:_MAX_COLUMNS]
        if unique and unique not in out:
            out.append(unique)

    if use.sort:
        add([*equality, *use.sort])
    if use.ranges:
        add([*equality, use.ranges[0]])
    add(equality)
    for column in [*equality, *use.ranges, *use.sort[:1]]:
        add([column])
    return out


def covered(
    columns: Sequence[str], equality: Iterable[str], existing: Iterable[Sequence[str | None]]
) -> bool:
    """Whether an existing index leads with ``columns``: its leading equality columns in any order, the
    rest in order (an index on ``(a, b)`` serves ``a = 1 AND b = 2`` as well as ``b = 2 AND a = 1``)."""
    equal = set(equality)
    size = len(columns)
    head = 0
    while head < size and columns[head] in equal:
        head += 1
    for index in existing:
        lead = list(index[:size])
        if (
            len(lead) == size
            and set(lead[:head]) == set(columns[:head])
            and lead[head:] == list(columns[head:])
        ):
            return True
    return False


def quote_ident(name: str) -> str:
    """``name`` as SQL: bare when it is a plain lower-case name, double-quoted otherwise."""
    return name if _SIMPLE.match(name) else '"' + name.replace('"', '""') + '"'


def index_name(table: str, columns: Sequence[str]) -> str:
    """``ix_<table>_<columns>``, lower-case and safe; past 63 characters, cut and ended with a hash."""
    raw = "_".join(["ix", table, *columns])
    safe = re.sub(r"[^a-z0-9_]+", "_", raw.lower()).strip("_")
    if len(safe) <= MAX_IDENTIFIER and safe == raw:
        return safe
    digest = hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{safe[: MAX_IDENTIFIER - 9].rstrip('_')}_{digest}"


def index_ddl(backend: str, schema: str | None, table: str, columns: Sequence[str]) -> str:
    """``CREATE INDEX CONCURRENTLY`` on PostgreSQL (no lock on writes); plain ``CREATE INDEX`` on SQLite."""
    target = ".".join(quote_ident(part) for part in (schema, table) if part)
    cols = ", ".join(quote_ident(column) for column in columns)
    verb = "CREATE INDEX CONCURRENTLY" if backend == "postgresql" else "CREATE INDEX"
    return f"{verb} {index_name(table, columns)} ON {target} ({cols})"
