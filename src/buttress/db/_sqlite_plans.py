"""What SQLite's ``EXPLAIN QUERY PLAN`` and a light reading of the SQL say a table is searched by.

SQLite's plan names the tables it reads in full (``SCAN t``), the ones it builds a throwaway index for
(``SEARCH t USING AUTOMATIC COVERING INDEX (k=?)``, a sure sign a real one is missing) and a sort it does
itself (``USE TEMP B-TREE FOR ORDER BY``), but not the conditions. Those come from the SQL, tokenised
(never executed, never fully parsed): in ``WHERE`` and ``ON`` clauses, a column of the scanned table next
to ``=``, ``==``, ``IN`` or ``IS NULL`` is an equality column, next to ``<``, ``<=``, ``>``, ``>=`` or
``BETWEEN`` a range column; the ``ORDER BY`` columns count when the statement has a ``LIMIT``. The
result is the same :class:`~buttress.db._plans.ScanUse` the PostgreSQL plan walk gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from buttress.db._plans import ScanUse

__all__ = ["scanned", "sqlite_uses", "table_refs", "tokens"]

_TOKEN: Final = re.compile(
    r"""(?P<skip>\s+|--[^\n]*|/\*.*?\*/)
      | (?P<string>'(?:[^']|'')*')
      | (?P<name>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|[A-Za-z_][A-Za-z0-9_$]*)
      | (?P<param>\?\d*|(?<!:)[:@$][A-Za-z_]\w*|\$\d+|%\(\w+\)s|%s)
      | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
      | (?P<op>==|!=|<>|<=|>=|\|\||[=<>(),.;*+\-/%])
    """,
    re.VERBOSE | re.DOTALL,
)
_SCAN: Final = re.compile(r"^SCAN (?:TABLE )?(\S+)(?: AS (\S+))?")
_AUTOMATIC: Final = re.compile(r"^SEARCH (?:TABLE )?(\S+)(?: AS (\S+))? USING AUTOMATIC .*?INDEX \((.*)\)")
_KEYWORDS: Final = frozenset(
    [
        "WHERE",
        "JOIN",
        "INNER",
        "LEFT",
        "RIGHT",
        "FULL",
        "CROSS",
        "OUTER",
        "ON",
        "USING",
        "GROUP",
        "ORDER",
        "LIMIT",
        "NATURAL",
        "UNION",
        "EXCEPT",
        "INTERSECT",
        "WINDOW",
        "HAVING",
        "SET",
        "VALUES",
        "RETURNING",
        "AS",
        "INDEXED",
        "NOT",
        "OFFSET",
        "SELECT",
        "FROM",
    ]
)
_OPEN_CONDITION: Final = frozenset({"WHERE", "ON"})
_CLOSE_CONDITION: Final = frozenset(
    {"SELECT", "FROM", "GROUP", "ORDER", "LIMIT", "JOIN", "SET", "RETURNING", "UNION", "HAVING", "WINDOW"}
)
_EQUALITY: Final = frozenset({"=", "==", "IN", "IS"})
_RANGE: Final = frozenset({"<", "<=", ">", ">=", "BETWEEN"})


def _unquote(name: str) -> str:
    if name[:1] in '"`[':
        return name[1:-1].replace('""', '"') if name[0] == '"' else name[1:-1]
    return name


def tokens(sql: str) -> list[tuple[str, str]]:
    """``(kind, text)`` for each token of ``sql`` (kinds: string, name, param, number, op)."""
    out: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "op"
        if kind != "skip":
            out.append((kind, match.group(0)))
    return out


def table_refs(toks: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Alias (or bare table name) -> table, for every table after FROM, JOIN, UPDATE or INTO."""
    refs: dict[str, str] = {}
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        i += 1
        if kind != "name" or text.upper() not in {"FROM", "JOIN", "UPDATE", "INTO"}:
            continue
        while i < len(toks) and toks[i][0] == "name" and toks[i][1].upper() not in _KEYWORDS:
            table = _unquote(toks[i][1])
            i += 1
            if i + 1 < len(toks) and toks[i][1] == "." and toks[i + 1][0] == "name":
                table = _unquote(toks[i + 1][1])  # schema.table: the table is what the plan names
                i += 2
            if i < len(toks) and toks[i][1].upper() == "AS":
                i += 1
            alias = table
            if i < len(toks) and toks[i][0] == "name" and toks[i][1].upper() not in _KEYWORDS:
                alias = _unquote(toks[i][1])
                i += 1
            refs[alias.lower()] = table
            if i < len(toks) and toks[i][1] == ",":
                i += 1
                continue
            break
    return refs


def scanned(details: Iterable[str]) -> tuple[list[tuple[str, list[str]]], bool]:
    """From the plan's detail lines: ``(reference, automatic-index columns)`` per scanned table, and
    whether SQLite sorts the rows itself."""
    found: list[tuple[str, list[str]]] = []
    sorts = False
    for detail in details:
        if detail.startswith("USE TEMP B-TREE FOR ORDER BY"):
            sorts = True
        automatic = _AUTOMATIC.match(detail)
        if automatic is not None:
            ref = automatic.group(2) or automatic.group(1)
            columns = [
                part.split("=")[0].strip() for part in automatic.group(3).split(" AND ") if "=" in part
            ]
            found.append((ref, columns))
            continue
        scan = _SCAN.match(detail)
        if scan is not None and not detail.startswith(("SCAN CONSTANT", "SCAN SUBQUERY")):
            found.append((scan.group(2) or scan.group(1), []))
    return found, sorts


def _column_at(
    toks: Sequence[tuple[str, str]], i: int, ref: str, columns: Mapping[str, str]
) -> tuple[str | None, int]:
    """The column of ``ref`` that starts at token ``i`` (and the index after it), or None."""
    if i + 2 < len(toks) and toks[i + 1][1] == "." and toks[i + 2][0] == "name":
        if _unquote(toks[i][1]).lower() != ref.lower():
            return None, i + 3
        return columns.get(_unquote(toks[i + 2][1]).lower()), i + 3
    if i > 0 and toks[i - 1][1] == ".":
        return None, i + 1
    return columns.get(_unquote(toks[i][1]).lower()), i + 1


def _conditions(use: ScanUse, toks: Sequence[tuple[str, str]], columns: Mapping[str, str]) -> None:
    stack: list[bool] = []
    inside = False
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        upper = text.upper()
        if text == "(":
            stack.append(inside)
        elif text == ")":
            inside = stack.pop() if stack else False
        elif kind == "name" and upper in _OPEN_CONDITION:
            inside = True
        elif kind == "name" and upper in _CLOSE_CONDITION:
            inside = False
        elif kind == "name" and inside and upper not in _KEYWORDS:
            column, after = _column_at(toks, i, use.alias, columns)
            if column is not None:
                before = toks[i - 1][1].upper() if i else ""
                op = toks[after][1].upper() if after < len(toks) else ""
                if op == "IS" and after + 1 < len(toks) and toks[after + 1][1].upper() == "NOT":
                    op = ""
                if op in _EQUALITY or before in {"=", "=="}:
                    use.add(use.equality, column)
                elif op in _RANGE or before in _RANGE:
                    use.add(use.ranges, column)
            i = after
            continue
        i += 1


def _order_by(use: ScanUse, toks: Sequence[tuple[str, str]], columns: Mapping[str, str]) -> None:
    depth = 0
    start = None
    upper = [text.upper() for _kind, text in toks]
    for i, text in enumerate(upper):
        depth += (text == "(") - (text == ")")
        if depth == 0 and text == "ORDER" and i + 1 < len(upper) and upper[i + 1] == "BY":
            start = i + 2
    if start is None or "LIMIT" not in upper[start:]:
        return
    sort: list[str] = []
    for item in " ".join(upper[start : start + upper[start:].index("LIMIT")]).split(","):
        words = item.replace(" . ", ".").split()
        if not words or any(word not in {"ASC", "DESC", "NULLS", "FIRST", "LAST"} for word in words[1:]):
            return
        ref, _dot, name = words[0].rpartition(".")
        column = columns.get(_unquote(name).lower())
        if column is None or (ref and _unquote(ref).lower() != use.alias.lower()):
            return
        sort.append(column)
    for column in sort:
        use.add(use.sort, column)


def sqlite_uses(
    sql: str, ref: str, table: str, *, columns: Sequence[str], automatic: Sequence[str], sorts: bool
) -> ScanUse:
    """How ``sql`` searches ``table`` (scanned as ``ref``), from its tokens and the plan's hints."""
    by_lower = {column.lower(): column for column in columns}
    use = ScanUse(None, table, ref)
    for column in automatic:
        if column.lower() in by_lower:
            use.add(use.joins, by_lower[column.lower()])
    toks = tokens(sql)
    _conditions(use, toks, by_lower)
    if sorts:
        _order_by(use, toks, by_lower)
    return use
