"""The data layer on SQLAlchemy 2: one :class:`Database` with a sync and an async engine.

PostgreSQL through psycopg 3 when ``BUTTRESS_DATABASE_URL`` points at one; otherwise the embedded SQLite
file ``buttress.db`` in the working directory (:data:`DEFAULT_URL`), with WAL, a busy timeout and foreign
keys on every connection. ``db.session()``/``db.asession()`` give a session in one transaction;
``db.transaction(fn)``/``await db.atransaction(fn)`` run ``fn(session)`` as a unit retried on
serialization failures, deadlocks and lost connections. Database errors arrive as buttress errors:
``ConflictError`` (unique violation, naming the constraint), ``DeadlineExceeded`` (statement timeout),
``BackendUnavailable`` (unreachable), with passwords masked. ``paginate``/``apaginate`` (and
``db.paginate``) read keyset pages with signed cursors into a :class:`Page` a FastAPI route can return.

Read replicas (PostgreSQL only): ``db.session(read_only=True)`` reads from a healthy replica that has
replayed the writes of the current :func:`consistent` scope or of a ``key``; see ``docs/db-replicas.md``.
``db.cached(select(...))`` serves a SELECT's rows from ``buttress.cache`` until a committed write touches
one of its tables.
``db.queries`` (a :class:`QueryTracker`) keeps per-fingerprint statement statistics, a slow log with
plans and N+1 incidents per :func:`query_scope` (and per container scope).
"""

from buttress.db._advice import AdviceReport, IndexAdvice, Sample, Skipped
from buttress.db._bulk import BulkResult
from buttress.db._database import Database, Isolation
from buttress.db._engines import DEFAULT_URL
from buttress.db._errors import is_retryable, translate
from buttress.db._fingerprint import Fingerprint, fingerprint, normalise
from buttress.db._migration_status import VERSION_TABLE, MigrationStatus
from buttress.db._n_plus_one import NPlusOneIncident, QueryScope, query_scope
from buttress.db._options import internal_options
from buttress.db._pagination import Page, apaginate, paginate
from buttress.db._plan_runner import Plan, PlanRunner, Step
from buttress.db._provide import health_checks, register_services
from buttress.db._query_cache import QueryCache
from buttress.db._query_rows import Rows
from buttress.db._replica_lsn import Consistency, consistent
from buttress.db._replicas import ReplicaRouter
from buttress.db._report import DbAdviceReport, DbStatsReport, PoolStats, advice_report, db_stats
from buttress.db._schema_gate import SchemaGate
from buttress.db._slow_log import SlowStatement
from buttress.db._tracking import QueryTracker, RawSample, StatementStats

__all__ = [
    "DEFAULT_URL",
    "VERSION_TABLE",
    "AdviceReport",
    "BulkResult",
    "Consistency",
    "Database",
    "DbAdviceReport",
    "DbStatsReport",
    "Fingerprint",
    "IndexAdvice",
    "Isolation",
    "MigrationStatus",
    "NPlusOneIncident",
    "Page",
    "Plan",
    "PlanRunner",
    "PoolStats",
    "QueryCache",
    "QueryScope",
    "QueryTracker",
    "RawSample",
    "ReplicaRouter",
    "Rows",
    "Sample",
    "SchemaGate",
    "Skipped",
    "SlowStatement",
    "StatementStats",
    "Step",
    "advice_report",
    "apaginate",
    "consistent",
    "db_stats",
    "fingerprint",
    "health_checks",
    "internal_options",
    "is_retryable",
    "normalise",
    "paginate",
    "query_scope",
    "register_services",
    "translate",
]
