"""What an ``EXPLAIN (FORMAT JSON, VERBOSE)`` plan says a table is searched by: what index advice reads.

:func:`scan_uses` walks a PostgreSQL plan and returns one :class:`ScanUse` per sequential scan of a table
(parallel or not), and per index scan that still filters the rows its index returns: the columns its
conditions compare for equality (``=``, ``= ANY (...)`` from ``IN`` lists, ``IS NULL``) and by range
(``<``, ``<=``, ``>``, ``>=``; ``BETWEEN`` arrives as two of them), the columns joined on (``Hash Cond``,
``Merge Cond``, ``Join Filter``, and a filter naming another table's column, as a nested loop over a
sequential scan has), and the sort keys when a ``Limit`` sits over a ``Sort`` of that scan. Casts
(``(t.email)::text``) are looked through; a column inside a function call (``lower(t.email)``) is not,
since only an expression index would serve it. VERBOSE makes the planner qualify every column with its
table's unique alias, which is how a condition is tied to its table. Only names leave this module, never
the constants a plan shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["ScanUse", "conjuncts", "scan_uses", "split_top", "strip_parens"]

_IDENT: Final = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_COLUMN: Final = re.compile(rf"^(?:({_IDENT})\.)?({_IDENT})$")
_CAST: Final = re.compile(r"::[A-Za-z_][A-Za-z0-9_ ]*(?:\[\])?(?:\(\d+(?:,\d+)?\))?$")
_EQUALITY: Final = frozenset({"="})
_RANGE: Final = frozenset({"<", "<=", ">", ">="})
_FLIP: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}
_OPERATORS: Final = ("<=", ">=", "<>", "!=", "=", "<", ">")
_SORT_SUFFIX: Final = re.compile(r"\s+(?:DESC|ASC|NULLS FIRST|NULLS LAST|USING \S+)$", re.IGNORECASE)
_PASS_THROUGH: Final = frozenset({"Gather", "Gather Merge", "Result", "Materialize", "Memoize"})
_INDEXED_SCANS: Final = frozenset({"Index Scan", "Index Only Scan", "Bitmap Heap Scan"})
_SYSTEM_SCHEMAS: Final = frozenset({"pg_catalog", "information_schema", "pg_toast"})


@dataclass
class ScanUse:
    """One scan of ``schema.table`` as ``alias`` and the columns the statement searches it by; ``indexed``
    when the scan already uses an index but filters what it returns."""

    schema: str | None
    table: str
    alias: str
    indexed: bool = False
    equality: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)
    sort: list[str] = field(default_factory=list)

    def add(self, bucket: list[str], column: str) -> None:
        if column not in bucket:
            bucket.append(column)


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _pieces(text: str) -> Iterator[tuple[int, int, str]]:
    """(index, depth, char) for every character outside string literals and quoted names."""
    depth = 0
    quote: str | None = None
    for index, char in enumerate(text):
        if quote is not None:
            if char == quote:
                quote = None
            continue
        if char in "'\"":
            quote = char
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        yield index, depth, char


def split_top(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` (a keyword such as `` AND ``) where it is outside parentheses."""
    parts: list[str] = []
    start = 0
    upper = text.upper()
    for index, depth, _char in _pieces(text):
        if depth == 0 and index >= start and upper.startswith(separator, index):
            parts.append(text[start:index])
            start = index + len(separator)
    parts.append(text[start:])
    return [part.strip() for part in parts]


def strip_parens(text: str) -> str:
    """``text`` without the parentheses that wrap all of it."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        closes_at = next((i for i, depth, c in _pieces(text) if c == ")" and depth == 0), len(text) - 1)
        if closes_at != len(text) - 1:
            break
        text = text[1:-1].strip()
    return text


def conjuncts(condition: str) -> list[str]:
    """The ``AND``-ed parts of a condition, each without its wrapping parentheses."""
    out: list[str] = []
    for part in split_top(strip_parens(condition), " AND "):
        inner = strip_parens(part)
        if inner != part.strip() and len(split_top(inner, " AND ")) > 1:
            out.extend(conjuncts(inner))
        else:
            out.append(inner)
    return out


def column_of(operand: str) -> tuple[str | None, str] | None:
    """``(alias, column)`` when ``operand`` is a column, possibly cast and parenthesised; else None."""
    text = strip_parens(operand)
    while True:
        cast = _CAST.search(text)
        if cast is None:
            break
        text = strip_parens(text[: cast.start()])
    match = _COLUMN.match(text)
    if match is None or (match.group(1) is None and text.isupper()):
        return None  # NULL, TRUE, CURRENT_DATE...: PostgreSQL prints keywords upper-case, names lower
    alias, column = match.group(1), match.group(2)
    return (_unquote(alias) if alias else None, _unquote(column))


def _split_comparison(conjunct: str) -> tuple[str, str, str] | None:
    for index, depth, _char in _pieces(conjunct):
        if depth != 0:
            continue
        for op in _OPERATORS:
            if conjunct.startswith(op, index) and conjunct[index - 1 : index] == " ":
                return conjunct[:index].strip(), op, conjunct[index + len(op) :].strip()
    return None


def _comparison(conjunct: str) -> tuple[tuple[str | None, str], str, tuple[str | None, str] | None] | None:
    """``(column, operator, other column or None)`` for ``column op constant`` or ``column = column``."""
    upper = conjunct.upper()
    if upper.endswith(" IS NULL"):
        found = column_of(conjunct[: -len(" IS NULL")])
        return None if found is None else (found, "=", None)
    if " OR " in upper or "SUBPLAN" in upper:
        return None
    split = _split_comparison(conjunct)
    if split is None:
        return None
    left, op, right = split
    any_of = right.upper().startswith(("ANY ", "ANY("))
    if any_of and op != "=":
        return None
    right_column = None if any_of else column_of(right)
    left_column = column_of(left)
    if left_column is None and right_column is not None:
        return right_column, _FLIP.get(op, op), None
    return None if left_column is None else (left_column, op, right_column)


def _classify(use: ScanUse, conjunct: str, aliases: Mapping[str, ScanUse]) -> None:
    """File one conjunct of a scan's filter under the columns of the scans it names."""
    found = _comparison(conjunct)
    if found is None:
        return
    column, op, other = found
    if other is not None:  # column = column: the join key, on each side that is a scanned table
        if op in _EQUALITY:
            for alias, name in (column, other):
                if alias is None or alias == use.alias:  # compared row by row at this scan: equality here
                    use.add(use.equality, name)
                    use.add(use.joins, name)
                elif alias in aliases:
                    aliases[alias].add(aliases[alias].joins, name)
        return
    if column[0] not in (None, use.alias):
        return  # another table's column against a constant: that table's own scan files it
    if op in _EQUALITY:
        use.add(use.equality, column[1])
    elif op in _RANGE:
        use.add(use.ranges, column[1])


def _nodes(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _scan_below(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The sequential scan a Sort reads straight from (through Gather and friends), if any."""
    while True:
        if node.get("Node Type") == "Seq Scan":
            return node
        children = node.get("Plans", ())
        if node.get("Node Type") not in _PASS_THROUGH and node.get("Node Type") != "Sort":
            return None
        if len(children) != 1:
            return None
        node = children[0]


def _sort_columns(keys: list[str], alias: str) -> list[str]:
    columns: list[str] = []
    for key in keys:
        found = column_of(_SORT_SUFFIX.sub("", key.strip()))
        if found is None or (found[0] is not None and found[0] != alias):
            return []  # an expression or another table's column: no single-table index gives this order
        columns.append(found[1])
    return columns


def _scanned(node: Mapping[str, Any]) -> bool:
    """A sequential scan, or an index scan that still filters rows the index handed it."""
    kind = node.get("Node Type")
    if node.get("Schema") in _SYSTEM_SCHEMAS or "Relation Name" not in node:
        return False
    return kind == "Seq Scan" or (kind in _INDEXED_SCANS and bool(node.get("Filter")))


def scan_uses(explain: Any) -> list[ScanUse]:
    """The scans of user tables worth an index in an ``EXPLAIN (FORMAT JSON, VERBOSE)`` result: every
    sequential scan, and index scans with a ``Filter`` (``indexed``: a wider index might serve them)."""
    root = explain[0]["Plan"] if isinstance(explain, list) else explain["Plan"]
    nodes = list(_nodes(root))
    uses: dict[str, ScanUse] = {}
    for node in nodes:
        if _scanned(node):
            alias = str(node.get("Alias") or node["Relation Name"])
            indexed = node.get("Node Type") != "Seq Scan"
            uses[alias] = ScanUse(node.get("Schema"), str(node["Relation Name"]), alias, indexed=indexed)
    for node in nodes:
        use = uses.get(str(node.get("Alias") or node.get("Relation Name"))) if _scanned(node) else None
        if use is not None:
            for key in ("Index Cond", "Recheck Cond", "Filter"):
                for conjunct in conjuncts(str(node[key])) if node.get(key) else ():
                    _classify(use, conjunct, uses)
        for key in ("Hash Cond", "Merge Cond", "Join Filter"):
            if node.get(key):
                for conjunct in conjuncts(str(node[key])):
                    _classify_join(conjunct, uses)
        if node.get("Node Type") == "Limit":
            _note_sort(node, uses)
    return list(uses.values())


def _classify_join(conjunct: str, uses: Mapping[str, ScanUse]) -> None:
    comparison = _split_comparison(conjunct)
    if comparison is None or comparison[1] != "=":
        return
    for side in (column_of(comparison[0]), column_of(comparison[2])):
        if side is not None and side[0] is not None and side[0] in uses:
            use = uses[side[0]]
            use.add(use.joins, side[1])


def _note_sort(limit: Mapping[str, Any], uses: Mapping[str, ScanUse]) -> None:
    children = limit.get("Plans", ())
    node = children[0] if children else None
    while node is not None and node.get("Node Type") in _PASS_THROUGH:
        node = node["Plans"][0] if node.get("Plans") else None
    if node is None or node.get("Node Type") not in ("Sort", "Incremental Sort"):
        return
    scan = _scan_below(node)
    if scan is None:
        return
    use = uses.get(str(scan.get("Alias") or scan.get("Relation Name")))
    if use is not None:
        for column in _sort_columns(list(node.get("Sort Key", ())), use.alias):
            use.add(use.sort, column)
