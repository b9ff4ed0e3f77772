"""The data layer on SQLAlchemy 2: one :class:`Database` with a sync and an async engine.

PostgreSQL through psycopg 3 when ``BUTTRESS_DATABASE_URL`` points at one; otherwise the embedded SQLite
file ``buttress.db`` in the working directory (:data:`DEFAULT_URL`), with WAL, a busy timeout and foreign
keys on every connection. ``db.session()``/``db.asession()`` give a session in one transaction;
``db.transaction(fn)``/``await db.atransaction(fn)`` run ``fn(session)`` as a unit retried on
serialization failures, deadlocks and lost connections. Database errors arrive as buttress errors:
``ConflictError`` (unique violation, naming the constraint), ``DeadlineExceeded`` (statement timeout),
``BackendUnavailable`` (unreachable), with passwords masked. ``db.cached(select(...))`` serves a
SELECT's rows from ``buttress.cache`` until a committed write touches one of its tables.
"""

from buttress.db._database import Database, Isolation
from buttress.db._engines import DEFAULT_URL
from buttress.db._errors import is_retryable, translate
from buttress.db._provide import health_checks, register_services
from buttress.db._query_cache import QueryCache
from buttress.db._query_rows import Rows

__all__ = [
    "DEFAULT_URL",
    "Database",
    "Isolation",
    "QueryCache",
    "Rows",
    "health_checks",
    "is_retryable",
    "register_services",
    "translate",
]
