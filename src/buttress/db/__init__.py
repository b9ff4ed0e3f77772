"""The data layer on SQLAlchemy 2: one :class:`Database` with a sync and an async engine.

PostgreSQL through psycopg 3 when ``BUTTRESS_DATABASE_URL`` points at one; otherwise the embedded SQLite
file ``buttress.db`` in the working directory (:data:`DEFAULT_URL`), with WAL, a busy timeout and foreign
keys on every connection. ``db.session()``/``db.asession()`` give a session in one transaction;
``db.transaction(fn)``/``await db.atransaction(fn)`` run ``fn(session)`` as a unit retried on
serialization failures, deadlocks and lost connections. Database errors arrive as buttress errors:
``ConflictError`` (unique violation, naming the constraint), ``DeadlineExceeded`` (statement timeout),
``BackendUnavailable`` (unreachable), with passwords masked.
"""

from buttress.db._bulk import BulkResult
from buttress.db._database import Database, Isolation
from buttress.db._engines import DEFAULT_URL
from buttress.db._errors import is_retryable, translate
from buttress.db._provide import health_checks, register_services

__all__ = [
    "DEFAULT_URL",
    "BulkResult",
    "Database",
    "Isolation",
    "health_checks",
    "is_retryable",
    "register_services",
    "translate",
]
