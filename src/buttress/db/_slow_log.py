"""The slow log: the newest slow statements, their parameters redacted to types, and their plans.

A statement that took at least ``slow_query_ms`` is kept with its normalised SQL, the types of its
parameters (never their values: a slow log is read by people who must not see passwords or personal
data), its duration, the user code's ``file:line`` and the planner's plan. The plan is captured right away
on the statement's own connection with the same parameters: ``EXPLAIN (FORMAT JSON)`` on PostgreSQL,
``EXPLAIN QUERY PLAN`` on SQLite, never ``ANALYZE`` (which would run the statement again). The constants
in the plan's text (PostgreSQL prints the values it planned with) are replaced by ``?``. On PostgreSQL
it runs inside a savepoint, so an EXPLAIN that fails leaves the caller's transaction as it was, and not
at all when that transaction has already failed. Only SELECT, INSERT, UPDATE, DELETE and WITH statements
are explained, and not executemany batches. A fingerprint is explained at most once per
:data:`EXPLAIN_EVERY` seconds; its slow entries in between carry the plan captured last.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["EXPLAIN_EVERY", "SlowLog", "SlowStatement", "explain", "parameter_types"]

_log = logging.getLogger("buttress.db")

EXPLAIN_EVERY: Final = 60.0
"""Seconds before a fingerprint's plan is captured again."""
_EXPLAINABLE: Final = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES")
_SAVEPOINT: Final = "buttress_explain"
_PG_IN_TRANSACTION: Final = 2  # psycopg.pq.TransactionStatus.INTRANS
_PG_IDLE: Final = 0
_QUOTED: Final = re.compile(r"'(?:[^']|'')*'")
_NUMBER: Final = re.compile(r"(?<![\w.$])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")


@dataclass(frozen=True, slots=True)
class SlowStatement:
    """One slow statement; ``parameters`` holds the types of the values sent, never the values."""

    fingerprint: str
    sql: str
    operation: str
    seconds: float
    parameters: Any
    site: str
    plan: Any
    failed: bool
    at: float


def parameter_types(parameters: Any) -> Any:
    """The shape of ``parameters`` with each value replaced by its type name."""
    if isinstance(parameters, Mapping):
        return {str(name): type(value).__name__ for name, value in parameters.items()}
    if isinstance(parameters, Sequence) and not isinstance(parameters, (str, bytes)):
        if parameters and all(isinstance(row, (Mapping, tuple, list)) for row in parameters):
            return {"rows": len(parameters), "first": parameter_types(parameters[0])}
        return [type(value).__name__ for value in parameters]
    return None if parameters is None else type(parameters).__name__


class SlowLog:
    """A bounded ring of :class:`SlowStatement`, newest last."""

    def __init__(self, size: int) -> None:
        self._ring: collections.deque[SlowStatement] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, entry: SlowStatement) -> None:
        with self._lock:
            self._ring.append(entry)

    def entries(self) -> list[SlowStatement]:
        with self._lock:
            return list(self._ring)

    def clear(self) -> None:
        with self._lock:
            self._ring.clear()


def explainable(sql: str) -> bool:
    """Whether ``sql`` is a statement EXPLAIN accepts without running it."""
    return sql.lstrip(" (").upper().startswith(_EXPLAINABLE)


def scrub(plan: Any) -> Any:
    """``plan`` with the constants inside its text replaced by ``?``: PostgreSQL prints the values it
    planned with (``Filter: (name = 'secret'::text)``), and a plan is shown to people."""
    if isinstance(plan, str):
        return _NUMBER.sub("?", _QUOTED.sub("'?'", plan))
    if isinstance(plan, list):
        return [scrub(item) for item in plan]
    if isinstance(plan, dict):
        return {key: scrub(value) for key, value in plan.items()}
    return plan


def explain(backend: str, connection: Any, statement: str, parameters: Any) -> Any:
    """The plan of ``statement`` on ``connection`` (a pooled DBAPI connection), or None."""
    if not explainable(statement) or isinstance(parameters, list):  # a list: executemany's rows
        return None
    try:
        if backend == "postgresql":
            return scrub(_explain_postgresql(connection, statement, parameters))
        return scrub(_explain_sqlite(connection, statement, parameters))
    except Exception:  # noqa: BLE001 - a plan is a courtesy; the caller's statement already succeeded
        _log.debug("could not explain a slow statement", exc_info=True)
        return None


def _execute(cursor: Any, sql: str, parameters: Any) -> None:
    if parameters:
        cursor.execute(sql, parameters)
    else:
        cursor.execute(sql)


def _explain_sqlite(connection: Any, statement: str, parameters: Any) -> Any:
    cursor = connection.cursor()
    try:
        _execute(cursor, "EXPLAIN QUERY PLAN " + statement, parameters)
        return [{"id": row[0], "parent": row[1], "detail": row[3]} for row in cursor.fetchall()]
    finally:
        cursor.close()


def _explain_postgresql(connection: Any, statement: str, parameters: Any) -> Any:
    status = int(connection.driver_connection.info.transaction_status)
    if status not in (_PG_IDLE, _PG_IN_TRANSACTION):
        return None  # the transaction failed (or is in an unknown state): leave it alone
    nested = status == _PG_IN_TRANSACTION
    cursor = connection.cursor()
    try:
        if nested:
            cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            _execute(cursor, "EXPLAIN (FORMAT JSON) " + statement, parameters)
            plan = cursor.fetchall()[0][0]
        except Exception:
            if nested:
                cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            raise
        if nested:
            cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        return plan
    finally:
        cursor.close()
