"""What every cache backend stores and the protocol it implements.

A backend is a dumb, fast key-value store with TTLs, tags and a lock: the :class:`~buttress.cache.Cache` in
front of it owns keys, namespaces, freshness, single-flight, stale-while-revalidate and statistics. The
memory, Redis and tiered backends pass one conformance suite
(``tests/conformance/test_cache_conformance.py``).

Keys reaching a backend are already namespaced (``"<namespace>:<key>"``); a backend may add its own prefix
(Redis does, so several services share one server). Every method has an ``a``-prefixed async twin; the
memory backend's twins simply call the sync methods, which never block.

A backend never raises because its server is unreachable: it serves what it can locally, counts the call
as degraded and reconnects by itself (see ``available``, ``degraded_calls`` and ``check``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from buttress.observe.health import CheckResult

__all__ = ["NEVER", "BackendInfo", "CacheBackend", "Entry", "namespace_of"]

NEVER = math.inf
"""``fresh_until`` of an entry that never goes stale (a counter, or a value set with ``ttl=None``)."""


@dataclass(slots=True)
class Entry:
    """A cached value and the wall-clock time (epoch seconds) until which it is fresh.

    After ``fresh_until`` the entry is stale; the backend keeps it until its own TTL (fresh time plus the
    stale window) so a :class:`~buttress.cache.Cache` can serve it while one refresh runs. ``tags`` let
    :meth:`CacheBackend.invalidate_tags` find it.
    """

    value: Any
    fresh_until: float = NEVER
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What a backend reports about itself for health, stats and logs."""

    name: str
    """``memory``, ``redis`` or ``tiered``."""
    available: bool
    """False while its server is unreachable and it serves locally."""
    detail: str = ""
    """Where it stores (URL with the password masked), or why it is degraded."""
    entries: int | None = None
    """Entries held locally (memory or L1), None when unknown."""
    evictions: Mapping[str, int] | None = None
    """Entries evicted to respect the size bounds, per namespace (memory or L1), None when unknown."""
    expired_unread: Mapping[str, int] | None = None
    """Entries that expired before anyone read them, per namespace (memory or L1), None when unknown."""
    sizes: Mapping[str, int] | None = None
    """Entries held locally per namespace, None when unknown."""


@runtime_checkable
class CacheBackend(Protocol):
    """The storage under a :class:`~buttress.cache.Cache`.

    ``ttl`` arguments are the seconds the backend keeps an entry (its fresh time plus any stale window);
    ``None`` keeps it until it is deleted or evicted. Namespaces are the part of a key before its first
    ``:``; :meth:`clear` removes one namespace.
    """

    @property
    def name(self) -> str:
        """``memory``, ``redis`` or ``tiered``."""
        ...

    def get(self, key: str) -> Entry | None:
        """The entry under ``key``, or None when absent or past its TTL."""
        ...

    def get_many(self, keys: Sequence[str]) -> list[Entry | None]:
        """:meth:`get` for several keys in one round trip, in order."""
        ...

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry`` under ``key`` for ``ttl`` seconds, replacing what was there (and its tags)."""
        ...

    def set_many(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> None:
        """:meth:`set` for several keys in one round trip."""
        ...

    def delete(self, keys: Sequence[str]) -> int:
        """Remove ``keys``; the number that existed."""
        ...

    def exists(self, key: str) -> bool:
        """True when ``key`` holds an entry within its TTL."""
        ...

    def incr(self, key: str, delta: int, ttl: float | None) -> int:
        """Add ``delta`` to the integer under ``key`` (0 when absent) and return the result.

        ``ttl`` applies only when the key is created. A key holding a non-integer, a ``delta`` that is not a
        signed 64-bit integer (field ``delta``) and a result outside that range (field ``key``) raise
        :class:`~buttress.errors.ValidationError`. An integer stored with tags or a ``fresh_until`` is exact
        only within +-2**53 on Redis (Lua arithmetic), which raises past it.
        """
        ...

    def expire(self, key: str, ttl: float | None) -> bool:
        """Give ``key`` a new TTL (``None``: keep it until deleted); False when it does not exist."""
        ...

    def clear(self, namespace: str) -> int:
        """Remove every key of ``namespace``; the number of live entries removed (best effort for remote
        stores). Here and in :meth:`delete` and :meth:`invalidate_tags`, an entry past its TTL that a
        backend still holds is not counted."""
        ...

    def invalidate_tags(self, tags: Sequence[str]) -> int:
        """Remove every entry carrying one of ``tags``; the number of live entries removed."""
        ...

    def acquire_lock(self, key: str, token: str, lease: float) -> bool:
        """Take the compute lock of ``key`` for ``lease`` seconds, or False if another holder has it.

        In-process backends return True (the Cache's single-flight already covers one process); the Redis
        lock expires on its own, so a holder that dies frees it after ``lease``. While the server is
        unreachable this returns True: compute locally rather than wait.
        """
        ...

    def release_lock(self, key: str, token: str) -> None:
        """Free the lock of ``key`` if ``token`` still holds it."""
        ...

    def info(self) -> BackendInfo:
        """Name, availability and local sizes, for health and stats."""
        ...

    def check(self) -> CheckResult:
        """A health result: pass when serving normally, warn while degraded (never fail)."""
        ...

    def close(self) -> None:
        """Release connections and background threads."""
        ...

    async def aget(self, key: str) -> Entry | None: ...

    async def aget_many(self, keys: Sequence[str]) -> list[Entry | None]: ...

    async def aset(self, key: str, entry: Entry, ttl: float | None) -> None: ...

    async def aset_many(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> None: ...

    async def adelete(self, keys: Sequence[str]) -> int: ...

    async def aexists(self, key: str) -> bool: ...

    async def aincr(self, key: str, delta: int, ttl: float | None) -> int: ...

    async def aexpire(self, key: str, ttl: float | None) -> bool: ...

    async def aclear(self, namespace: str) -> int: ...

    async def ainvalidate_tags(self, tags: Sequence[str]) -> int: ...

    async def aacquire_lock(self, key: str, token: str, lease: float) -> bool: ...

    async def arelease_lock(self, key: str, token: str) -> None: ...

    async def aclose(self) -> None: ...


def namespace_of(key: str) -> str:
    """The namespace part of a backend key (before the first ``:``)."""
    head, sep, _ = key.partition(":")
    return head if sep else ""
