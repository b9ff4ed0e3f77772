"""Statement fingerprints: SQL with its constants taken out, so one query shape is one row of statistics.

pg_stat_statements replaces every constant by ``$n`` and keys the statistics by the shape that is left;
this does the same on the SQL text, for SQLite too and without a server round trip. Normalising:

- string literals (``'...'``, ``E'...'``, dollar-quoted), numbers (a leading minus included where it is a
  sign), ``TRUE``/``FALSE`` and driver placeholders (``?``, ``%s``, ``%(name)s``, ``:name``, ``$1``) become
  ``$1``, ``$2``, ... numbered in order; ``NULL`` stays (``IS NULL`` is not ``= $1``);
- an ``IN`` list of nothing but constants (``IN (1, 2, 3)``, SQLAlchemy's expanding ``IN``) becomes
  ``($n /*, ... */)``, as PostgreSQL 18's pg_stat_statements squashes it, and further VALUES rows of the
  first row's shape are dropped, so lists and batches of any length share one fingerprint;
- comments go, runs of whitespace become one space, keywords are upper case and unquoted identifiers lower
  case (both are case-insensitive in SQL); quoted identifiers are kept as written.

The fingerprint id is the first 16 hex digits of a BLAKE2b hash of the normalised text. SQLAlchemy reuses
its compiled SQL strings, so callers cache :func:`fingerprint` per string and pay this once per shape.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Fingerprint", "fingerprint", "normalise", "operation_of"]

_TOKEN: Final = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<string>[eEbBxXnN]?'(?:[^']|'')*')
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$.*?\$(?P=tag)?\$)
  | (?P<param>\?\d*|%\([^)]+\)s|%s|\$\d+|(?<!:):[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op>::|<>|!=|<=|>=|\|\||[^\sA-Za-z0-9_])
    """,
    re.VERBOSE | re.DOTALL,
)

_KEYWORDS: Final = frozenset(
    """
    ABORT ALL ALTER ANALYZE AND ANY AS ASC BEGIN BETWEEN BY CASCADE CASE CAST CHECK COLLATE COLUMN
    COMMIT CONCURRENTLY CONFLICT CONSTRAINT COPY CREATE CROSS CURRENT_DATE CURRENT_TIME
    CURRENT_TIMESTAMP DEFAULT DEFERRABLE DELETE DESC DISTINCT DO DROP ELSE END ESCAPE EXCEPT EXISTS
    EXPLAIN FALSE FETCH FILTER FIRST FOR FOREIGN FROM FULL GROUP HAVING IF IGNORE ILIKE IN INDEX INNER
    INSERT INTERSECT INTO IS ISNULL JOIN KEY LAST LATERAL LEFT LIKE LIMIT LOCK NATURAL NOT NOTHING
    NOTNULL NOWAIT NULL NULLS OF OFFSET ON ONLY OR ORDER OUTER OVER PARTITION PRAGMA PRIMARY RECURSIVE
    REFERENCES RELEASE REPLACE RETURNING RIGHT ROLLBACK ROW ROWS SAVEPOINT SELECT SET SHARE SKIP SOME
    TABLE TEMP TEMPORARY THEN TO TRANSACTION TRUE TRUNCATE UNION UNIQUE UPDATE USING VALUES VIEW WHEN
    WHERE WINDOW WITH
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_BOOLEANS: Final = frozenset({"TRUE", "FALSE"})
_SIGN_AFTER: Final = frozenset({"(", ",", "=", "<", ">", "<=", ">=", "<>", "!=", "+", "-", "*", "/", "%"})
_CONSTANT: Final = "\x00"  # a constant, before numbering
_SQUASHED: Final = "\x01"  # a squashed list's first constant
_NO_SPACE_AFTER: Final = frozenset({"(", ".", "::"})
_NO_SPACE_BEFORE: Final = frozenset({")", ",", ".", "::", ";"})
_OPERATIONS: Final = {"SELECT": "select", "INSERT": "insert", "UPDATE": "update", "DELETE": "delete"}


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One statement shape: ``id`` (16 hex digits), the normalised ``sql`` and its ``operation``."""

    id: str
    sql: str
    operation: str


def _tokens(sql: str) -> list[str]:
    """The significant tokens of ``sql``: constants as one marker, words cased, comments and spaces gone."""
    out: list[str] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup
        if kind in ("ws", "comment"):
            continue
        if kind in ("string", "dollar", "param"):
            out.append(_CONSTANT)
        elif kind == "number":
            if out and out[-1] == "-" and (len(out) == 1 or out[-2] in _SIGN_AFTER or out[-2] in _KEYWORDS):
                out.pop()  # a sign, not a subtraction: part of the constant, as PostgreSQL's parser folds it
            out.append(_CONSTANT)
        elif kind == "word":
            upper = match.group().upper()
            if upper in _BOOLEANS and not (out and out[-1] in ("IS", "NOT")):
                out.append(_CONSTANT)
            else:
                out.append(upper if upper in _KEYWORDS else match.group().lower())
        elif kind == "tag":  # pragma: no cover - a named group inside "dollar", never the last group
            continue
        else:
            out.append(match.group())
    return out


def _squash(tokens: list[str]) -> list[str]:
    """Lists of constants become one constant; runs of VALUES rows become the first row."""
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        part = tokens[i]
        if part == "(" and out and out[-1] == "IN":
            j = i + 1
            while j + 1 < n and tokens[j] == _CONSTANT and tokens[j + 1] == ",":
                j += 2
            if j + 1 < n and tokens[j] == _CONSTANT and tokens[j + 1] == ")":
                out += ["(", _SQUASHED, ")"]
                i = j + 2
                continue
        if part == ")" and out and "VALUES" in out:
            out.append(part)
            i += 1
            row = _values_row(out)
            while row and i + len(row) < n and tokens[i] == "," and tokens[i + 1 : i + 1 + len(row)] == row:
                i += 1 + len(row)  # a further row of the same shape: a batch is one shape, whatever its size
            continue
        out.append(part)
        i += 1
    return out


def _values_row(out: list[str]) -> list[str] | None:
    """The row just closed in ``out`` when it directly follows VALUES (or an earlier row), else None."""
    depth, j = 0, len(out) - 1
    while j >= 0:
        if out[j] == ")":
            depth += 1
        elif out[j] == "(":
            depth -= 1
            if depth == 0:
                break
        j -= 1
    if j <= 0 or out[j - 1] != "VALUES":
        return None
    return out[j:]


def normalise(sql: str) -> str:
    """``sql`` with constants numbered ``$1``, ``$2``, ..., lists squashed, case and spacing canonical."""
    parts: list[str] = []
    number = 0
    for part in _squash(_tokens(sql)):
        if part == _CONSTANT:
            number += 1
            parts.append(f"${number}")
        elif part == _SQUASHED:
            number += 1
            parts.append(f"${number} /*, ... */")
        else:
            parts.append(part)
    return _join(parts).rstrip(" ;")


def _join(parts: list[str]) -> str:
    """Tokens joined by single spaces, except inside ``f(x)``, ``a.b``, ``x::int`` and before commas."""
    out: list[str] = []
    previous = ""
    for part in parts:
        call = part == "(" and previous[:1].isalpha() and previous not in _KEYWORDS
        if out and not call and previous not in _NO_SPACE_AFTER and part not in _NO_SPACE_BEFORE:
            out.append(" ")
        out.append(part)
        previous = part
    return "".join(out)


def operation_of(normalised: str) -> str:
    """``select``, ``insert``, ``update``, ``delete`` or ``other``: a bounded metric label.

    A ``WITH`` statement is named by its main statement, the first of the four after the CTEs.
    """
    first = normalised.split(" ", 1)[0]
    if first == "WITH":
        depth = 0
        for word in normalised.split(" "):
            depth += word.count("(") - word.count(")")
            if depth == 0 and word in _OPERATIONS:
                return _OPERATIONS[word]
        return "other"
    return _OPERATIONS.get(first, "other")


def fingerprint(sql: str) -> Fingerprint:
    """The :class:`Fingerprint` of ``sql``."""
    text = normalise(sql)
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return Fingerprint(digest, text, operation_of(text))
