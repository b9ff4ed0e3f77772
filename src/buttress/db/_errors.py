"""Database errors in the buttress tree, and which of them a retried transaction runs again.

:func:`translate` maps a SQLAlchemy error: a unique violation (SQLSTATE 23505, SQLite ``UNIQUE constraint
failed``) becomes :class:`~buttress.errors.ConflictError` naming the constraint (SQLite reports the
columns, not a name); a statement timeout (57014) :class:`~buttress.errors.DeadlineExceeded`; a server
that cannot be reached or a lost connection (08xxx, no SQLSTATE on a failed connect, an invalidated
connection, SQLite ``unable to open``) :class:`~buttress.errors.BackendUnavailable`; a serialization
failure or deadlock that outlived its retries (40001, 40P01, SQLite busy) ``ConflictError``. Anything else
is left as it is. Every message has URL passwords masked. :func:`is_retryable` says which raw errors
:meth:`~buttress.db.Database.transaction` runs the whole unit again for.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import DBAPIError

from buttress._redaction import mask_url_password
from buttress.errors import BackendUnavailable, ButtressError, ConflictError, DeadlineExceeded

__all__ = ["is_retryable", "sqlstate_of", "translate"]

_RETRY_STATES: Final = frozenset({"40001", "40P01"})
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_SQLITE_CANTOPEN: Final = 14


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error wrapped by SQLAlchemy, or None (SQLite, failed connects)."""
    orig = getattr(error, "orig", None)
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def _sqlite_code(error: BaseException) -> int | None:
    code = getattr(getattr(error, "orig", None), "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _unreachable(error: DBAPIError) -> bool:
    if error.connection_invalidated:  # SQLAlchemy saw a disconnect (terminated backend, dead socket)
        return True
    state = sqlstate_of(error)
    if state is not None:
        return state.startswith("08")
    if _sqlite_code(error) == _SQLITE_CANTOPEN:
        return True
    # psycopg raises OperationalError without a SQLSTATE when it cannot connect or the server went away.
    return type(error.orig).__name__ == "OperationalError" and _sqlite_code(error) is None


def is_retryable(error: BaseException) -> bool:
    """Whether a whole transaction is worth running again: a serialization failure, a deadlock, a lost
    connection (or SQLite busy)."""
    if not isinstance(error, DBAPIError):
        return False
    if sqlstate_of(error) in _RETRY_STATES:
        return True
    if _sqlite_code(error) in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    return _unreachable(error)


def _message(error: DBAPIError) -> str:
    text = str(error.orig) if error.orig is not None else str(error)
    return mask_url_password(text.strip().splitlines()[0] if text.strip() else type(error).__name__)


def translate(error: BaseException, *, backend: str, attempts: int = 1) -> BaseException:
    """The buttress error for ``error`` (``backend``: "postgresql" or "sqlite"), or ``error`` itself."""
    if not isinstance(error, DBAPIError):
        return error
    state = sqlstate_of(error)
    detail = _message(error)
    context = {"sqlstate": state, "attempts": attempts}
    mapped: ButtressError | None = None
    if state == "23505" or (_sqlite_code(error) is not None and "UNIQUE constraint failed" in detail):
        diag = getattr(error.orig, "diag", None)
        constraint = getattr(diag, "constraint_name", None) or detail.rpartition(": ")[2]
        mapped = ConflictError(
            f"unique constraint {constraint!r} violated: {detail}",
            error_code="unique_violation",
            context={**context, "constraint": constraint},
        )
    elif state == "57014":
        mapped = DeadlineExceeded(
            f"the statement ran past the database's statement timeout: {detail}",
            error_code="statement_timeout",
            context=context,
        )
    elif state in _RETRY_STATES or _sqlite_code(error) in (_SQLITE_BUSY, _SQLITE_LOCKED):
        mapped = ConflictError(
            f"the transaction kept conflicting with concurrent ones after {attempts} attempt(s): {detail}",
            error_code="serialization_failure",
            context=context,
        )
    elif _unreachable(error):
        mapped = BackendUnavailable(
            f"the {backend} database cannot be reached after {attempts} attempt(s): {detail}",
            backend=backend,
            context=context,
        )
    return error if mapped is None else mapped
