"""The query-result cache: a SELECT's rows kept in ``buttress.cache``, invalidated by per-table versions.

Every table has a version in the cache: a random token, replaced by a new random token after each
committed transaction that wrote the table (:class:`~buttress.db._writes.Commits` announces them). A
cached result is stored under a key made of its statement and parameters, *together with the versions of
every table it read*; a lookup reads the entry and the current versions in one ``get_many`` round trip and
serves the entry only if its versions are still the current ones. Invalidation is therefore a write to
the shared cache, seen by every process at its next lookup, with no clock involved (django-cachalot#19
compared timestamps across servers). Versions are random, never counters: a version lost to eviction, a
Redis restart or flush, or the outage replay of the Redis backend (which deletes keys it wrote locally)
comes back as a *new* token, so old entries never match again (a counter restarting at 0 would climb back
to the numbers old entries were stored under). Nothing is tied to a database connection, so a database
restart changes nothing (django-cachalot#269: invalidation stopped after one).

Why no stale read: a result is computed only after the versions it is stored with were read (or
created), and a writer replaces a table's version only after its commit returned. A lookup that starts
after that replacement either sees the new version (and misses, or finds a result computed after the
replacement, which saw the commit) or a version set even later; the old version cannot come back, since
each token is written once. Reads inside a transaction that has written (or holds unflushed ORM changes)
go to that transaction and are neither served from nor stored in the cache.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Executable, Select, TextClause
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.util import find_tables

from buttress._tally import Tally
from buttress.cache import Cache, TieredBackend
from buttress.db._query_rows import Rows, decode_rows, encode_rows
from buttress.db._writes import WRITTEN, current_session, table_key
from buttress.errors import ValidationError

if TYPE_CHECKING:
    from buttress.db._database import Database
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["HITS_METRIC", "INVALIDATIONS_METRIC", "MISSES_METRIC", "QueryCache"]

HITS_METRIC: Final = "buttress_db_query_cache_hits_total"
MISSES_METRIC: Final = "buttress_db_query_cache_misses_total"
BYPASSED_METRIC: Final = "buttress_db_query_cache_bypassed_total"
INVALIDATIONS_METRIC: Final = "buttress_db_query_cache_invalidations_total"

_PLANS_MAX: Final = 512


_Step = tuple[str, str, Any]
"""One step of a lookup: ``(operation, key, value)``."""


def _token() -> str:
    return secrets.token_hex(8)


class _Plan:
    """What one statement shape needs: its SQL (for the key) and the tables it reads."""

    __slots__ = ("sql", "tables")

    def __init__(self, sql: str, tables: tuple[str, ...]) -> None:
        self.sql = sql
        self.tables = tables


class QueryCache:
    """Cached SELECTs of one :class:`~buttress.db.Database`; ``db.cached(...)`` and ``db.query_cache``.

    ``cache`` holds results and versions; every process that writes the database must use the same one
    (by default the process-wide :func:`~buttress.cache.get_cache`, i.e. Redis when configured), since
    a writer bumps versions where readers look. A tiered cache's versions and results are read from its
    shared L2, never from the in-process L1 (a broadcast could arrive after the read).
    """

    def __init__(self, database: Database, cache: Cache | None = None, *, namespace: str = "dbquery") -> None:
        self._db = database
        self._namespace = namespace
        self._store: Cache | None = None
        self._given = cache
        self._lock = threading.Lock()
        self._plans: dict[Any, _Plan] = {}
        url = database.urls.sync.render_as_string(hide_password=True)
        self._prefix = hashlib.blake2b(url.encode(), digest_size=6).hexdigest() + ":"
        self.hits = Tally()
        self.misses = Tally()
        self.bypassed = Tally()
        self.invalidations = Tally()
        self._exported: dict[str, int] = {}
        self._metrics: MetricsRegistry | None = None

    # -- the cache --------------------------------------------------------------------------------

    def use(self, cache: Cache) -> QueryCache:
        """Keep results and versions in ``cache`` from now on (every process must use the same one)."""
        if not isinstance(cache, Cache):
            raise ValidationError(
                f"cache must be a buttress.cache.Cache, got {type(cache).__name__}; e.g. Cache()",
                field="cache",
            )
        with self._lock:
            self._given, self._store = cache, None
        return self

    @property
    def cache(self) -> Cache:
        """The cache namespace results and versions live in (resolved on first use)."""
        store = self._store
        if store is None:
            with self._lock:
                store = self._store
                if store is None:
                    store = self._store = self._resolve()
        return store

    def _resolve(self) -> Cache:
        cache = self._given
        if cache is None:
            from buttress.cache import get_cache  # noqa: PLC0415 - the process cache, only when first needed

            cache = get_cache()
        backend = cache.backend
        if isinstance(backend, TieredBackend):  # versions must come from the shared store, not the L1
            cache = Cache(backend.l2, namespace=self._namespace, ttl=None, metrics=cache.metrics)
        else:
            cache = cache.namespaced(self._namespace)
        registry = cache.metrics
        if registry is None:
            from buttress.observe.metrics import get_metrics  # noqa: PLC0415 - keep imports light

            registry = get_metrics()
        if registry is not self._metrics:
            if self._metrics is not None:
                self._metrics.remove_collect_hook(self._export)
            self._metrics, self._exported = registry, {}
            registry.add_collect_hook(self._export)
        return cache

    def _available(self, cache: Cache) -> bool:
        return bool(getattr(cache.backend, "available", True))

    # -- statements -------------------------------------------------------------------------------

    def _plan(self, stmt: Executable, tables: Iterable[str] | None) -> tuple[_Plan, list[Any]]:
        """The plan of ``stmt`` and the values of its bound parameters."""
        if not self._db.settings.query_cache:
            raise ValidationError(
                "db.cached() needs the commit-time invalidation that BUTTRESS_DB__QUERY_CACHE=false turned "
                "off; turn it back on (in every process), or query the database directly",
                field="query_cache",
            )
        if isinstance(stmt, str) or not isinstance(stmt, Select | TextClause):
            raise ValidationError(
                f"stmt must be a SQLAlchemy select() or text() SELECT, got {type(stmt).__name__}; "
                "e.g. db.cached(select(User).where(User.id == 1))",
                field="stmt",
            )
        extra = _check_tables(tables)
        if isinstance(stmt, TextClause) and not extra:
            raise ValidationError(
                "a text() statement needs tables=: the tables it reads cannot be read from its SQL; "
                "e.g. db.cached(text('SELECT ...'), tables=['users'])",
                field="tables",
            )
        ck = stmt._generate_cache_key()
        if ck is None:  # a statement SQLAlchemy itself will not cache: compile it every time
            compiled = stmt.compile(dialect=self._db.engine.dialect)
            return _new_plan(str(compiled), stmt, extra), sorted(compiled.params.items())
        memo = (ck.key, extra)
        plan = self._plans.get(memo)
        if plan is None:
            plan = _new_plan(str(stmt.compile(dialect=self._db.engine.dialect)), stmt, extra)
            if len(self._plans) >= _PLANS_MAX:
                self._plans.clear()
            self._plans[memo] = plan
        return plan, [bind.effective_value for bind in ck.bindparams]

    def _keys(
        self, plan: _Plan, values: Sequence[Any], params: Mapping[str, Any] | None
    ) -> tuple[str, list[str]]:
        digest = hashlib.blake2b(plan.sql.encode(), digest_size=16)
        digest.update(repr(values).encode())
        if params:
            digest.update(repr(sorted(params.items())).encode())
        prefix = self._prefix
        return prefix + "r:" + digest.hexdigest(), [prefix + "v:" + table for table in plan.tables]

    # -- reads ------------------------------------------------------------------------------------

    def fetch(
        self,
        stmt: Executable,
        *,
        params: Mapping[str, Any] | None = None,
        ttl: float | None = 60.0,
        tables: Iterable[str] | None = None,
    ) -> Rows:
        """The rows of ``stmt``: from the cache while its tables are unchanged, else from the database.

        Inside a ``db.session()``/``db.transaction()`` block whose transaction has written (or holds
        unflushed ORM changes), ``stmt`` runs in that transaction, uncached, and sees its writes.
        """
        plan, values = self._plan(stmt, tables)
        ttl = _check(params, ttl)
        session = current_session()
        if isinstance(session, Session) and _session_wrote(session, session.connection().info):
            self.bypassed.add()
            return _rows(session.execute(stmt, params))
        cache = self.cache
        if not self._available(cache):
            self.bypassed.add()
            return self._query(stmt, params)
        steps = self._lookup(*self._keys(plan, values, params), ttl)
        done: Any = None
        try:
            while True:
                op, key, value = steps.send(done)
                done = None
                if op == "get_many":
                    done = cache.get_many(value)
                elif op == "set_many":
                    cache.set_many(value, ttl=None)
                elif op == "query":
                    done = self._query(stmt, params)
                else:
                    cache.set(key, value, ttl=ttl)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def afetch(
        self,
        stmt: Executable,
        *,
        params: Mapping[str, Any] | None = None,
        ttl: float | None = 60.0,
        tables: Iterable[str] | None = None,
    ) -> Rows:
        """Async :meth:`fetch`."""
        plan, values = self._plan(stmt, tables)
        ttl = _check(params, ttl)
        session = current_session()
        if isinstance(session, AsyncSession):
            connection = await session.connection()
            if _session_wrote(session.sync_session, connection.sync_connection.info):  # type: ignore[union-attr]
                self.bypassed.add()
                return _rows(await session.execute(stmt, params))
        cache = self.cache
        if not self._available(cache):
            self.bypassed.add()
            return await self._aquery(stmt, params)
        steps = self._lookup(*self._keys(plan, values, params), ttl)
        done: Any = None
        try:
            while True:
                op, key, value = steps.send(done)
                done = None
                if op == "get_many":
                    done = await cache.aget_many(value)
                elif op == "set_many":
                    await cache.aset_many(value, ttl=None)
                elif op == "query":
                    done = await self._aquery(stmt, params)
                else:
                    await cache.aset(key, value, ttl=ttl)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _lookup(self, key: str, version_keys: list[str], ttl: float | None) -> Generator[_Step, Any, Rows]:
        """One lookup as a plan of cache and database steps, run by :meth:`fetch` and :meth:`afetch`.

        The versions are read (and the missing ones created) before the query runs: the order the
        no-stale-read argument of the module docstring rests on.
        """
        found = yield ("get_many", "", [key, *version_keys])
        versions, missing = _versions(found, version_keys)
        if missing:
            yield ("set_many", "", missing)
        else:
            entry = found.get(key)
            if entry is not None and entry.get("v") == versions:
                self.hits.add()
                return Rows(entry["c"], decode_rows(entry["r"]))
        self.misses.add()
        rows: Rows = yield ("query", "", None)
        yield ("set", key, {"v": versions, "c": list(rows.columns), "r": encode_rows(rows.columns, rows)})
        return rows

    def _query(self, stmt: Executable, params: Mapping[str, Any] | None) -> Rows:
        """Run ``stmt`` in a transaction of its own, begun after the versions were read."""
        try:
            with self._db.engine.connect() as connection:
                return _rows(connection.execute(stmt, params))
        except DBAPIError as exc:
            raise self._db._translate(exc) from exc

    async def _aquery(self, stmt: Executable, params: Mapping[str, Any] | None) -> Rows:
        try:
            async with self._db.async_engine.connect() as connection:
                return _rows(await connection.execute(stmt, params))
        except DBAPIError as exc:
            raise self._db._translate(exc) from exc

    # -- invalidation -----------------------------------------------------------------------------

    def invalidate(self, *tables: str) -> None:
        """Give ``tables`` new versions: every cached result that read one of them is a miss from now on."""
        self.bump(_check_tables(tables))

    async def ainvalidate(self, *tables: str) -> None:
        """Async :meth:`invalidate`."""
        await self.abump(_check_tables(tables))

    def bump(self, tables: Iterable[str]) -> None:
        """New versions for ``tables`` (already :func:`table_key` names): the commit listener."""
        versions = {self._prefix + "v:" + name: _token() for name in tables}
        if versions:
            self.cache.set_many(versions, ttl=None)
            for _ in versions:
                self.invalidations.add()

    async def abump(self, tables: Iterable[str]) -> None:
        """Async :meth:`bump`."""
        versions = {self._prefix + "v:" + name: _token() for name in tables}
        if versions:
            await self.cache.aset_many(versions, ttl=None)
            for _ in versions:
                self.invalidations.add()

    # -- reporting --------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Counts since start, and where results are kept."""
        store = self._store
        return {
            "cache": None if store is None else repr(store),
            "namespace": self._namespace,
            "hits": self.hits.value,
            "misses": self.misses.value,
            "bypassed": self.bypassed.value,
            "invalidations": self.invalidations.value,
        }

    def _export(self, registry: MetricsRegistry) -> None:
        counts = (
            (HITS_METRIC, "Query-cache lookups served from the cache.", self.hits),
            (MISSES_METRIC, "Query-cache lookups that ran the query.", self.misses),
            (BYPASSED_METRIC, "Cached queries run uncached (uncommitted writes, cache down).", self.bypassed),
            (INVALIDATIONS_METRIC, "Table versions replaced after a committed write.", self.invalidations),
        )
        with self._lock:
            for name, description, tally in counts:
                value = tally.value
                delta = value - self._exported.get(name, 0)
                if delta > 0:
                    self._exported[name] = value
                    registry.counter(name, description).inc(delta)


def _new_plan(sql: str, stmt: Executable, extra: tuple[str, ...]) -> _Plan:
    found = {table_key(table.name) for table in find_tables(stmt)}  # type: ignore[arg-type]
    plan = _Plan(sql, tuple(sorted({*found, *extra})))
    if not plan.tables:
        raise ValidationError(
            "stmt reads no table, so nothing would ever invalidate it; name the tables it depends on with "
            "tables=, e.g. tables=['users']",
            field="tables",
        )
    return plan


def _versions(found: Mapping[str, Any], version_keys: list[str]) -> tuple[list[str], dict[str, str]]:
    """The current version of each table, and new ones for the tables that have none (yet, or any more)."""
    versions, missing = [], {}
    for key in version_keys:
        version = found.get(key)
        if version is None:
            version = missing[key] = _token()
        versions.append(version)
    return versions, missing


def _rows(result: Any) -> Rows:
    return Rows([str(key) for key in result.keys()], [tuple(row) for row in result])  # noqa: SIM118 - a Result


def _session_wrote(session: Session, info: Mapping[str, Any]) -> bool:
    return bool(info.get(WRITTEN)) or bool(session.new or session.dirty or session.deleted)


def _check_tables(tables: Iterable[str] | None) -> tuple[str, ...]:
    if tables is None:
        return ()
    if isinstance(tables, str):
        tables = (tables,)
    names = tuple(tables)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(
                f"tables must be table names, got {name!r}; e.g. tables=['users', 'orders']", field="tables"
            )
    return tuple(sorted({table_key(name) for name in names}))


def _check(params: object, ttl: object) -> float | None:
    """A ValidationError for ``params`` that are not a mapping; ``ttl`` checked as the cache checks it."""
    if params is not None and not isinstance(params, Mapping):
        raise ValidationError(
            f"params must be a mapping of bound parameter values, got {type(params).__name__}; "
            "e.g. params={'id': 1}",
            field="params",
        )
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
        raise ValidationError(
            f"ttl must be positive seconds or None (until its tables change), got {ttl!r}; e.g. 60",
            field="ttl",
        )
    return float(ttl)
