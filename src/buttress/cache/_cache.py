"""The :class:`Cache`: one API over any backend, sync and async, stampede-safe, stale-while-revalidate.

A lookup is one backend read and a freshness check. A miss in :meth:`Cache.get_or_set` (and in
``@cached``) goes through single-flight, so concurrent misses on one key in this process run the function
once; the leader then takes the backend's lock with a lease, so processes sharing Redis compute once too.
A waiter never waits past ``lock_wait``: after that it computes on its own rather than hang.

With ``stale_ttl``, an entry stays in the backend that much longer than its TTL; a lookup in that window
returns the stale value at once and starts one background refresh (a thread for sync callers, a task for
async ones), guarded per key in this process and by the backend lock across processes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from buttress.cache._backend import NEVER, BackendInfo, CacheBackend, Entry
from buttress.cache._flight import AsyncSingleFlight, SingleFlight
from buttress.cache._memory import MemoryBackend
from buttress.cache._stats import SAMPLE_MASK, CacheStatsRecorder
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError

if TYPE_CHECKING:
    from buttress.cache._cached import CachedFunction
    from buttress.cache._defaults import BackendChoice
    from buttress.cache._report import CacheStatsReport
    from buttress.cache._telemetry import CacheTelemetry
    from buttress.cache._warm import WarmerRegistry, WarmProgress, WarmResult
    from buttress.events import EventBus
    from buttress.observe.health import CheckResult
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["DEFAULT", "Cache", "Policy", "make_policy"]

_log = logging.getLogger("buttress.cache")

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
"""``ttl=DEFAULT``: use the cache's default TTL."""

_new_entry = Entry.__new__
_FIRST_WAIT = 0.005
_MAX_WAIT = 0.1


def check_ttl(ttl: object, field: str = "ttl") -> float | None:
    """``ttl`` as positive seconds or None (never expires), or a ValidationError naming ``field``."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not (0 < ttl < math.inf):
        raise ValidationError(
            f"{field} must be a positive number of seconds or None (never expires), got {ttl!r}; e.g. 300",
            field=field,
        )
    return float(ttl)


def check_stale_ttl(stale_ttl: object, field: str = "stale_ttl") -> float:
    """``stale_ttl`` as seconds >= 0, or a ValidationError naming ``field``."""
    if isinstance(stale_ttl, int | float) and not isinstance(stale_ttl, bool) and 0 <= stale_ttl < math.inf:
        return float(stale_ttl)
    raise ValidationError(
        f"{field} must be a number of seconds >= 0, got {stale_ttl!r}; e.g. 60", field=field
    )


def check_tags(tags: str | Iterable[str]) -> tuple[str, ...]:
    """``tags`` as a tuple; a single string is one tag."""
    result = (tags,) if isinstance(tags, str) else tuple(tags)
    for tag in result:
        if not isinstance(tag, str) or not tag:
            raise ValidationError(
                f"tags must be non-empty strings, got {tag!r}; e.g. tags=('artists',)", field="tags"
            )
    return result


def check_namespace(namespace: object) -> str:
    # The Redis backend keeps tag sets and locks under "~tag" and "~lock": no namespace may reach them.
    if (
        not isinstance(namespace, str)
        or not namespace
        or any(c in namespace for c in ": ")
        or namespace[0] == "~"
    ):
        raise _bad_namespace(namespace)
    return namespace


def _bad_namespace(namespace: object) -> ValidationError:
    return ValidationError(
        f"namespace must be a non-empty string without ':' or spaces, not starting with '~', "
        f"got {namespace!r}; e.g. 'artists'",
        field="namespace",
    )


def _bad_key(key: object) -> ValidationError:
    return ValidationError(
        f"cache keys must be strings, got {type(key).__name__} {key!r}; e.g. f'user:{{user_id}}'", field="key"
    )


class Policy:
    """How a computed value is stored: TTL, tags, stale window and the ``unless`` filter."""

    __slots__ = ("stale_ttl", "tags", "ttl", "unless")

    def __init__(
        self,
        ttl: float | None,
        tags: tuple[str, ...] = (),
        stale_ttl: float = 0.0,
        unless: Callable[[Any], bool] | None = None,
    ) -> None:
        self.ttl = ttl
        self.tags = tags
        self.stale_ttl = stale_ttl
        self.unless = unless


def make_policy(
    default_ttl: float | None,
    ttl: float | _Default | None = DEFAULT,
    tags: str | Iterable[str] = (),
    stale_ttl: float = 0.0,
    unless: Callable[[Any], bool] | None = None,
) -> Policy:
    """A checked :class:`Policy`; ``ttl=DEFAULT`` takes ``default_ttl``."""
    if unless is not None and not callable(unless):
        raise ValidationError(
            f"unless must be a callable taking the result and returning True to skip caching it, "
            f"got {unless!r}; e.g. unless=lambda result: result is None",
            field="unless",
        )
    return Policy(
        default_ttl if isinstance(ttl, _Default) else check_ttl(ttl),
        check_tags(tags),
        check_stale_ttl(stale_ttl),
        unless,
    )


class _Shared:
    """What a cache and its namespaced siblings share."""

    def __init__(  # noqa: PLR0917 - private, called once
        self,
        backend: CacheBackend,
        clock: Clock,
        lock_lease: float,
        lock_wait: float,
        metrics: MetricsRegistry | None,
        events: EventBus | None,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.lock_lease = lock_lease
        self.lock_wait = lock_wait
        self.metrics = metrics
        self.events = events
        system = isinstance(clock, SystemClock)
        self.wall: Callable[[], float] = time.time if system else clock.time
        self.monotonic: Callable[[], float] = time.monotonic if system else clock.monotonic
        self.perf: Callable[[], float] = time.perf_counter if system else clock.monotonic
        self.recorder = CacheStatsRecorder(self.monotonic)
        self.flight = SingleFlight()
        self.aflight = AsyncSingleFlight()
        self.lock = threading.Lock()
        self.refreshing: set[str] = set()
        self.threads: set[threading.Thread] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.siblings: dict[str, Cache] = {}
        # The parts built on top of a cache, one typed slot each (set once, under their module's lock):
        self.telemetry: CacheTelemetry | None = None  # _telemetry.instrument()
        self.warmers: WarmerRegistry | None = None  # _warm: the @cache.warmer registry
        self.choice: BackendChoice | None = None  # build_cache(): why this backend


class Cache:
    """Get, set and compute-once over a :class:`CacheBackend` (in-process memory when none is given).

    ``namespace`` prefixes every key (``"<namespace>:<key>"``); :meth:`namespaced` gives a sibling cache on
    another namespace that shares the backend, statistics and single-flight. ``ttl`` is the default
    lifetime in seconds (``None``: until deleted or evicted). ``lock_lease`` bounds how long a process may
    hold a key's compute lock; ``lock_wait`` how long another waits for it before computing itself.
    """

    def __init__(
        self,
        backend: CacheBackend | None = None,
        *,
        namespace: str = "default",
        ttl: float | None = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
        lock_lease: float = 30.0,
        lock_wait: float = 10.0,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        lease = check_ttl(lock_lease, "lock_lease")
        wait = check_stale_ttl(lock_wait, "lock_wait")
        shared = _Shared(
            backend if backend is not None else MemoryBackend(clock=clock),
            clock,
            lease if lease is not None else 30.0,
            wait,
            metrics,
            events,
        )
        self._bind(shared, check_namespace(namespace), check_ttl(ttl))
        from buttress.cache._telemetry import instrument  # noqa: PLC0415 - _telemetry builds on this module

        instrument(self)

    def _bind(self, shared: _Shared, namespace: str, ttl: float | None) -> None:
        self._shared = shared
        self.namespace = namespace
        self.ttl = ttl
        self.backend: CacheBackend = shared.backend
        self.clock = shared.clock
        self._prefix = namespace + ":"
        self._default_policy = Policy(ttl)
        self._stats = stats = shared.recorder.namespace(namespace)
        self._lookups = stats.lookups.add
        self._sets = stats.sets.add
        self._hits = self.hit = stats.hits.add
        self._get = shared.backend.get
        self._set = shared.backend.set
        self._aget = shared.backend.aget
        self._wall = self.wall = shared.wall
        self._perf = shared.perf
        shared.siblings.setdefault(namespace, self)

    def namespaced(self, namespace: str) -> Cache:
        """The cache of ``namespace``: same backend, statistics, locks and default TTL as this one."""
        shared = self._shared
        sibling = shared.siblings.get(namespace)
        if sibling is None:
            with shared.lock:
                sibling = shared.siblings.get(namespace)
                if sibling is None:
                    sibling = object.__new__(Cache)
                    sibling._bind(shared, check_namespace(namespace), self.ttl)
        return sibling

    def __repr__(self) -> str:
        return f"Cache(backend={self.backend.name!r}, namespace={self.namespace!r}, ttl={self.ttl})"

    @property
    def stats_recorder(self) -> CacheStatsRecorder:
        """The counters of every namespace of this cache and its siblings."""
        return self._shared.recorder

    @property
    def backend_choice(self) -> BackendChoice | None:
        """Which backend the settings asked for, which one runs and why (set by ``build_cache``)."""
        return self._shared.choice

    @property
    def events(self) -> EventBus | None:
        return self._shared.events

    @property
    def metrics(self) -> MetricsRegistry | None:
        return self._shared.metrics

    # -- the lookup and the policy ------------------------------------------------------------------

    def _key(self, key: str) -> str:
        try:
            return self._prefix + key
        except TypeError:
            raise _bad_key(key) from None

    def fetch(self, full: str) -> Entry | None:
        """One backend read, counted (and timed one call in 64)."""
        if self._lookups() & SAMPLE_MASK:
            return self._get(full)
        return self._timed_get(full)

    def _timed_get(self, full: str) -> Entry | None:
        """One lookup in 64: the backend's get, timed (the caller counted it)."""
        started = self._perf()
        entry = self._get(full)
        self._stats.get_latency.add(self._perf() - started)
        return entry

    async def afetch(self, full: str) -> Entry | None:
        if self._lookups() & SAMPLE_MASK:
            return await self._aget(full)
        return await self._atimed_get(full)

    async def _atimed_get(self, full: str) -> Entry | None:
        started = self._perf()
        entry = await self._aget(full)
        self._stats.get_latency.add(self._perf() - started)
        return entry

    def policy(
        self,
        ttl: float | _Default | None = DEFAULT,
        tags: str | Iterable[str] = (),
        stale_ttl: float = 0.0,
        unless: Callable[[Any], bool] | None = None,
    ) -> Policy:
        """A checked :class:`Policy`; ``ttl=DEFAULT`` takes this cache's default."""
        return make_policy(self.ttl, ttl, tags, stale_ttl, unless)

    def _entry(self, value: Any, policy: Policy) -> tuple[Entry, float | None]:
        ttl = policy.ttl
        if ttl is None:
            return Entry(value, NEVER, policy.tags), None
        return Entry(value, self._wall() + ttl, policy.tags), ttl + policy.stale_ttl

    def _store(self, full: str, value: Any, policy: Policy) -> None:
        entry, life = self._entry(value, policy)
        if self._sets() & SAMPLE_MASK:
            self.backend.set(full, entry, life)
        else:
            self._timed_set(full, entry, life)

    def _timed_set(self, full: str, entry: Entry, life: float | None) -> None:
        """One set in 64: the backend's set, timed."""
        started = self._perf()
        self.backend.set(full, entry, life)
        self._stats.set_latency.add(self._perf() - started)

    async def _astore(self, full: str, value: Any, policy: Policy) -> None:
        entry, ttl = self._entry(value, policy)
        sets = self._stats.sets.add()
        if sets & SAMPLE_MASK:
            await self.backend.aset(full, entry, ttl)
            return
        started = self._perf()
        await self.backend.aset(full, entry, ttl)
        self._stats.set_latency.add(self._perf() - started)

    # -- plain operations ---------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The fresh value under ``key``, or ``default``."""
        # _key() and fetch() written out: on a Redis hit each Python frame between two round trips costs
        # about twice its own time (the CPU work delays the next request), so the hit path keeps few
        try:
            full = self._prefix + key
        except TypeError:
            raise _bad_key(key) from None
        entry = self._get(full) if self._lookups() & SAMPLE_MASK else self._timed_get(full)
        if entry is not None and entry.fresh_until > self._wall():
            self._hits()
            return entry.value
        return default

    async def aget(self, key: str, default: Any = None) -> Any:
        try:
            full = self._prefix + key
        except TypeError:
            raise _bad_key(key) from None
        if self._lookups() & SAMPLE_MASK:
            entry = await self._aget(full)
        else:
            entry = await self._atimed_get(full)
        if entry is not None and entry.fresh_until > self._wall():
            self._hits()
            return entry.value
        return default

    def set(
        self, key: str, value: Any, *, ttl: float | _Default | None = DEFAULT, tags: str | Iterable[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (the cache's default when not given)."""
        policy = self._default_policy if ttl is DEFAULT and not tags else self.policy(ttl, tags)
        try:
            full = self._prefix + key
        except TypeError:
            raise _bad_key(key) from None
        # _store() and _entry() written out, and the Entry filled in place rather than by its __init__:
        # every set comes here, and each Python frame saved is a tenth of a memory set
        entry = _new_entry(Entry)
        entry.value = value
        entry.tags = policy.tags
        life = policy.ttl
        if life is None:
            entry.fresh_until = NEVER
        else:
            entry.fresh_until = self._wall() + life
            life += policy.stale_ttl
        if self._sets() & SAMPLE_MASK:
            self._set(full, entry, life)
        else:
            self._timed_set(full, entry, life)

    async def aset(
        self, key: str, value: Any, *, ttl: float | _Default | None = DEFAULT, tags: str | Iterable[str] = ()
    ) -> None:
        policy = self._default_policy if ttl is DEFAULT and not tags else self.policy(ttl, tags)
        await self._astore(self._key(key), value, policy)

    def delete(self, *keys: str) -> int:
        """Remove ``keys``; the number that existed."""
        return self.backend.delete([self._key(key) for key in keys])

    async def adelete(self, *keys: str) -> int:
        return await self.backend.adelete([self._key(key) for key in keys])

    def exists(self, key: str) -> bool:
        """True when ``key`` holds a fresh value."""
        entry = self.backend.get(self._key(key))
        return entry is not None and entry.fresh_until > self._wall()

    async def aexists(self, key: str) -> bool:
        entry = await self.backend.aget(self._key(key))
        return entry is not None and entry.fresh_until > self._wall()

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The fresh values of ``keys`` in one backend round trip; missing keys are left out."""
        names = list(keys)
        entries = self.backend.get_many([self._key(key) for key in names])
        return self._found(names, entries)

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        names = list(keys)
        entries = await self.backend.aget_many([self._key(key) for key in names])
        return self._found(names, entries)

    def _found(self, names: list[str], entries: list[Entry | None]) -> dict[str, Any]:
        now = self._wall()
        found = {}
        for name, entry in zip(names, entries, strict=True):
            self._lookups()
            if entry is not None and entry.fresh_until > now:
                self._hits()
                found[name] = entry.value
        return found

    def set_many(
        self,
        values: Mapping[str, Any],
        *,
        ttl: float | _Default | None = DEFAULT,
        tags: str | Iterable[str] = (),
    ) -> None:
        """Store every item of ``values`` in one backend round trip."""
        items, lifetime = self._items(values, self.policy(ttl, tags))
        self.backend.set_many(items, lifetime)

    async def aset_many(
        self,
        values: Mapping[str, Any],
        *,
        ttl: float | _Default | None = DEFAULT,
        tags: str | Iterable[str] = (),
    ) -> None:
        items, lifetime = self._items(values, self.policy(ttl, tags))
        await self.backend.aset_many(items, lifetime)

    def _items(
        self, values: Mapping[str, Any], policy: Policy
    ) -> tuple[list[tuple[str, Entry]], float | None]:
        items = []
        lifetime: float | None = None
        for key, value in values.items():
            entry, lifetime = self._entry(value, policy)
            items.append((self._key(key), entry))
            self._stats.sets.add()
        return items, lifetime if items else policy.ttl

    def incr(self, key: str, delta: int = 1, *, ttl: float | None = None) -> int:
        """Add ``delta`` to the integer under ``key`` (created at 0, with ``ttl`` if given); the new value."""
        return self.backend.incr(self._key(key), _check_delta(delta), check_ttl(ttl))

    async def aincr(self, key: str, delta: int = 1, *, ttl: float | None = None) -> int:
        return await self.backend.aincr(self._key(key), _check_delta(delta), check_ttl(ttl))

    def expire(self, key: str, ttl: float | None) -> bool:
        """Give ``key`` a new lifetime of ``ttl`` seconds from now (None: keep it); False if it is absent."""
        full, lifetime = self._key(key), check_ttl(ttl)
        entry = self.backend.get(full)
        if entry is None or entry.fresh_until <= self._wall():
            return False
        if entry.fresh_until == NEVER:  # counters: change the TTL alone, so a concurrent incr is kept
            return self.backend.expire(full, lifetime)
        renewed, _ = self._entry(entry.value, Policy(lifetime, entry.tags))
        self.backend.set(full, renewed, lifetime)
        return True

    async def aexpire(self, key: str, ttl: float | None) -> bool:
        full, lifetime = self._key(key), check_ttl(ttl)
        entry = await self.backend.aget(full)
        if entry is None or entry.fresh_until <= self._wall():
            return False
        if entry.fresh_until == NEVER:
            return await self.backend.aexpire(full, lifetime)
        renewed, _ = self._entry(entry.value, Policy(lifetime, entry.tags))
        await self.backend.aset(full, renewed, lifetime)
        return True

    def clear(self) -> int:
        """Remove every key of this cache's namespace (siblings keep theirs)."""
        return self.backend.clear(self.namespace)

    async def aclear(self) -> int:
        return await self.backend.aclear(self.namespace)

    def invalidate_tags(self, *tags: str) -> int:
        """Remove every entry, in any namespace, tagged with one of ``tags``; the number removed."""
        return self.backend.invalidate_tags(check_tags(tags))

    async def ainvalidate_tags(self, *tags: str) -> int:
        return await self.backend.ainvalidate_tags(check_tags(tags))

    # -- compute once -------------------------------------------------------------------------------

    def get_or_set(
        self,
        key: str,
        factory: Callable[[], T],
        *,
        ttl: float | _Default | None = DEFAULT,
        tags: str | Iterable[str] = (),
        stale_ttl: float = 0.0,
        unless: Callable[[T], bool] | None = None,
    ) -> T:
        """The value under ``key``, or ``factory()`` stored under it, run once however many callers miss."""
        full = self._key(key)
        policy = self.policy(ttl, tags, stale_ttl, unless)
        return self.resolve(full, self.fetch(full), factory, (), {}, policy)

    async def aget_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]],
        *,
        ttl: float | _Default | None = DEFAULT,
        tags: str | Iterable[str] = (),
        stale_ttl: float = 0.0,
        unless: Callable[[T], bool] | None = None,
    ) -> T:
        """:meth:`get_or_set` with an async ``factory``."""
        full = self._key(key)
        policy = self.policy(ttl, tags, stale_ttl, unless)
        return await self.aresolve(full, await self.afetch(full), factory, (), {}, policy)

    def resolve(  # noqa: PLR0917 - positional on the hot path of every @cached call
        self,
        full: str,
        entry: Entry | None,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: Policy,
    ) -> T:
        """The value for a lookup of ``full`` that found ``entry``; runs ``fn(*args, **kwargs)`` if needed."""
        if entry is not None:
            if entry.fresh_until > self._wall():
                self._hits()
                return entry.value  # type: ignore[no-any-return]
            if policy.stale_ttl:
                self._stats.stale_hits.add()
                self._refresh(full, fn, args, kwargs, policy)
                return entry.value  # type: ignore[no-any-return]
        return self._shared.flight.run(full, lambda: self._compute(full, fn, args, kwargs, policy))

    async def aresolve(  # noqa: PLR0917 - positional on the hot path of every @cached call
        self,
        full: str,
        entry: Entry | None,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: Policy,
    ) -> T:
        if entry is not None:
            if entry.fresh_until > self._wall():
                self._hits()
                return entry.value  # type: ignore[no-any-return]
            if policy.stale_ttl:
                self._stats.stale_hits.add()
                self._arefresh(full, fn, args, kwargs, policy)
                return entry.value  # type: ignore[no-any-return]
        return await self._shared.aflight.run(full, lambda: self._acompute(full, fn, args, kwargs, policy))

    def _fresh(self, entry: Entry | None) -> bool:
        return entry is not None and entry.fresh_until > self._wall()

    def _compute(
        self, full: str, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], policy: Policy
    ) -> T:
        backend, shared = self.backend, self._shared
        entry = backend.get(full)  # a flight that just finished may have stored it
        if entry is not None and self._fresh(entry):
            return entry.value  # type: ignore[no-any-return]
        token = uuid.uuid4().hex
        locked = backend.acquire_lock(full, token, shared.lock_lease)
        if not locked:
            deadline = shared.monotonic() + shared.lock_wait
            delay = _FIRST_WAIT
            while shared.monotonic() < deadline:
                shared.clock.sleep(delay)
                delay = min(delay * 2, _MAX_WAIT)
                entry = backend.get(full)
                if entry is not None and self._fresh(entry):
                    return entry.value  # type: ignore[no-any-return]
                if backend.acquire_lock(full, token, shared.lock_lease):
                    locked = True
                    break
        try:
            value = fn(*args, **kwargs)
            if policy.unless is None or not policy.unless(value):
                self._store(full, value, policy)
            return value
        finally:
            if locked:
                backend.release_lock(full, token)

    async def _acompute(
        self,
        full: str,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: Policy,
    ) -> T:
        backend, shared = self.backend, self._shared
        entry = await backend.aget(full)
        if entry is not None and self._fresh(entry):
            return entry.value  # type: ignore[no-any-return]
        token = uuid.uuid4().hex
        locked = await backend.aacquire_lock(full, token, shared.lock_lease)
        if not locked:
            deadline = shared.monotonic() + shared.lock_wait
            delay = _FIRST_WAIT
            while shared.monotonic() < deadline:
                await shared.clock.asleep(delay)
                delay = min(delay * 2, _MAX_WAIT)
                entry = await backend.aget(full)
                if entry is not None and self._fresh(entry):
                    return entry.value  # type: ignore[no-any-return]
                if await backend.aacquire_lock(full, token, shared.lock_lease):
                    locked = True
                    break
        try:
            value = await fn(*args, **kwargs)
            if policy.unless is None or not policy.unless(value):
                await self._astore(full, value, policy)
            return value
        finally:
            if locked:
                await backend.arelease_lock(full, token)

    # -- stale-while-revalidate ---------------------------------------------------------------------

    def _claim_refresh(self, full: str) -> bool:
        shared = self._shared
        with shared.lock:
            if full in shared.refreshing:
                return False
            shared.refreshing.add(full)
            return True

    def _refresh(
        self, full: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], policy: Policy
    ) -> None:
        if not self._claim_refresh(full):
            return
        thread = threading.Thread(
            target=self._run_refresh,
            args=(full, fn, args, kwargs, policy),
            name=f"buttress-cache-refresh:{full[:40]}",
            daemon=True,
        )
        with self._shared.lock:
            self._shared.threads.add(thread)
        thread.start()

    def _run_refresh(
        self, full: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], policy: Policy
    ) -> None:
        backend, shared = self.backend, self._shared
        token = uuid.uuid4().hex
        try:
            if backend.acquire_lock(full, token, shared.lock_lease):
                try:
                    value = fn(*args, **kwargs)
                    if policy.unless is None or not policy.unless(value):
                        self._store(full, value, policy)
                finally:
                    backend.release_lock(full, token)
        except Exception as exc:  # noqa: BLE001 - a failed refresh keeps the stale value; it must not kill the thread
            _log.warning("cache refresh of %s failed: %s: %s", full, type(exc).__name__, exc)
        finally:
            with shared.lock:
                shared.refreshing.discard(full)
                shared.threads.discard(threading.current_thread())

    def _arefresh(
        self,
        full: str,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: Policy,
    ) -> None:
        if not self._claim_refresh(full):
            return
        task = asyncio.get_running_loop().create_task(self._arun_refresh(full, fn, args, kwargs, policy))
        self._shared.tasks.add(task)
        task.add_done_callback(self._shared.tasks.discard)

    async def _arun_refresh(
        self,
        full: str,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: Policy,
    ) -> None:
        backend, shared = self.backend, self._shared
        token = uuid.uuid4().hex
        try:
            if await backend.aacquire_lock(full, token, shared.lock_lease):
                try:
                    value = await fn(*args, **kwargs)
                    if policy.unless is None or not policy.unless(value):
                        await self._astore(full, value, policy)
                finally:
                    await backend.arelease_lock(full, token)
        except Exception as exc:  # noqa: BLE001 - a failed refresh keeps the stale value
            _log.warning("cache refresh of %s failed: %s: %s", full, type(exc).__name__, exc)
        finally:
            with shared.lock:
                shared.refreshing.discard(full)

    def drain(self, timeout: float | None = 10.0) -> bool:
        """Wait for background refresh threads to finish; False if some still run after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._shared.lock:
                threads = list(self._shared.threads)
            if not threads:
                return True
            for thread in threads:
                thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))
            if deadline is not None and time.monotonic() >= deadline:
                with self._shared.lock:
                    return not self._shared.threads

    async def adrain(self) -> None:
        """Wait for this loop's background refresh tasks to finish."""
        loop = asyncio.get_running_loop()
        while tasks := [task for task in self._shared.tasks if task.get_loop() is loop]:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- decorating ---------------------------------------------------------------------------------

    def cached(
        self,
        ttl: float | _Default | None = DEFAULT,
        *,
        key: str | Callable[..., str] | None = None,
        namespace: str | None = None,
        tags: str | Iterable[str] = (),
        unless: Callable[[Any], bool] | None = None,
        stale_ttl: float = 0.0,
    ) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
        """Memoise a sync or async function or method in this cache (see ``buttress.cache`` docs)."""
        from buttress.cache._cached import make_cached  # noqa: PLC0415 - _cached imports this module

        return make_cached(
            lambda: self,
            ttl=ttl,
            key=key,
            namespace=namespace,
            tags=tags,
            unless=unless,
            stale_ttl=stale_ttl,
            fixed=True,
        )

    # -- warming and analytics ----------------------------------------------------------------------

    def warmer(self, name: str, *, on_startup: bool = True) -> Callable[[F], F]:
        """Register the decorated no-argument function as warmer ``name``; it may yield progress."""
        from buttress.cache._warm import warmer  # noqa: PLC0415 - _warm builds on this module

        return warmer(self, name, on_startup=on_startup)

    def warm(
        self,
        names: Iterable[str] | None = None,
        progress: Callable[[WarmProgress], None] | None = None,
        *,
        stop: Callable[[], bool] | None = None,
    ) -> list[WarmResult]:
        """Run the warmers (all, or ``names``) one after the other; a failing one does not stop the rest.

        ``stop()``, asked before each warmer and after each yield, ends the run with ``WarmCancelled``.
        """
        from buttress.cache._warm import run_warmers  # noqa: PLC0415 - _warm builds on this module

        return run_warmers(self, names, progress, stop=stop)

    async def awarm(
        self,
        names: Iterable[str] | None = None,
        progress: Callable[[WarmProgress], None] | None = None,
        *,
        stop: Callable[[], bool] | None = None,
    ) -> list[WarmResult]:
        """:meth:`warm` for async callers (sync warmers run in a thread)."""
        from buttress.cache._warm import arun_warmers  # noqa: PLC0415 - _warm builds on this module

        return await arun_warmers(self, names, progress, stop=stop)

    def stats(self) -> CacheStatsReport:
        """Hits, misses, hit rate, latency, size and evictions per namespace, with recommendations."""
        from buttress.cache._report import cache_stats  # noqa: PLC0415 - _report builds on this module

        return cache_stats(self)

    # -- reporting and lifecycle --------------------------------------------------------------------

    def info(self) -> BackendInfo:
        return self.backend.info()

    def check(self) -> CheckResult:
        """The backend's health: pass, or warn while it serves locally during an outage."""
        return self.backend.check()

    def close(self) -> None:
        self._forget_warmers()
        self.backend.close()

    async def aclose(self) -> None:
        self._forget_warmers()
        await self.backend.aclose()

    def _forget_warmers(self) -> None:
        if self._shared.warmers is not None:
            from buttress.cache._warm import forget_warmers  # noqa: PLC0415 - _warm builds on this module

            forget_warmers(self)


def _check_delta(delta: object) -> int:
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise ValidationError(f"delta must be an integer, got {delta!r}; e.g. 1", field="delta")
    return delta
