"""The Redis backend: one shared cache for every process, and an in-process memory cache when Redis is gone.

Keys are ``f"{prefix}:{key}"`` (``key`` is already ``"<namespace>:<key>"``). A value is one Redis string,
read with one ``GET`` and decoded with two ``bytes.partition`` calls and the serializer::

    [#]<fresh_until>\\t<tag>,<tag>\\n<payload>

``fresh_until`` is ``repr`` of the epoch seconds (empty: never stale); tags are comma-separated with
``%``, ``,``, tab and newline percent-escaped; the payload is the serializer's bytes. A leading ``#`` marks
an integer payload written in decimal whatever the serializer, so :meth:`RedisBackend.incr` can add to it
in Lua. An integer with no freshness and no tags (every counter made by ``incr``) is stored bare, as Redis
writes it, so ``INCRBY`` works on it and ``get`` returns ``Entry(int)``. A value that does not decode (a
pickle whose signature fails, bytes someone else wrote) is a miss: it is deleted, logged and counted in
:attr:`RedisBackend.rejected`.

Tags live in sets ``f"{prefix}:~tag:{tag}"`` whose TTL is at least their members'; compute locks are
``f"{prefix}:~lock:{key}"`` (``SET NX PX``, released by compare-and-delete). The ``~`` keeps them out of
any namespace a :class:`~buttress.cache.Cache` can clear, so do not name a namespace ``~tag`` or ``~lock``.
A tag set may keep members that were deleted or re-set without the tag: invalidation re-reads each
member's own tags before removing it. Every script is passed every key it touches (invalidation reads a
tag set first, then passes its members), so the backend also runs on a Redis Cluster
(``redis+cluster://``): there a tag's set is split per slot of its members, with an index of those
slots (:mod:`buttress.cache._slots`), and a namespace clear scans every primary.

When Redis cannot be reached (connection refused or reset, a timeout after ``socket_timeout``) nothing
raises: the call is served by ``fallback`` (a :class:`MemoryBackend`) and counted in
:attr:`RedisBackend.degraded_calls`; ``acquire_lock`` says yes, so callers compute locally. From then on
one call per backoff interval (``reconnect_min`` doubling to ``reconnect_max``) probes Redis; the others
never touch the network. When Redis answers again the fallback is emptied (another process may have
changed what it holds) and the keys, tags and namespaces written locally during the outage are deleted
from Redis in the background, since Redis's copies are older than what this process wrote. Metrics:
``buttress_cache_backend_degraded{backend}``, ``buttress_cache_degraded_calls_total{backend}``,
``buttress_cache_rejected_total{backend}``; events ``cache.backend.degraded`` and
``cache.backend.recovered``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast
from urllib.parse import unquote

from buttress._redis import (
    DEFAULT_TIMEOUT,
    POOL_SIZE,
    UNAVAILABLE,
    Plan,
    RedisConnection,
    Script,
    execute,
    pipeline,
    topology,
)
from buttress._tally import Tally
from buttress.cache._backend import NEVER, BackendInfo, Entry, namespace_of
from buttress.cache._memory import MemoryBackend
from buttress.cache._serializers import JsonSerializer, Serializer
from buttress.cache._slots import key_slot, slot_tag
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.events import publish_quietly

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.health_types import CheckResult
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["DEGRADED_CALLS_METRIC", "DEGRADED_METRIC", "REJECTED_METRIC", "RedisBackend"]

logger = logging.getLogger("buttress.cache")

DEGRADED_METRIC: Final = "buttress_cache_backend_degraded"
DEGRADED_CALLS_METRIC: Final = "buttress_cache_degraded_calls_total"
REJECTED_METRIC: Final = "buttress_cache_rejected_total"

_INT64: Final = 2**63
_SCAN_COUNT: Final = 1000
_UNLINK_BATCH: Final = 1000
_MISSED_MAX: Final = 10_000
_GLOB = re.compile(r"([*?\[\]\\])")
_TAG_SPECIALS = re.compile(r"[%,\t\n]")
_new_entry = Entry.__new__


# -- Lua: src/buttress/_redis/lua/cache_*.lua (tag helpers in lua/include/cache_tags.lua) ----------------

_SET_TAGGED = Script.file("cache_set_tagged")
"""SET a value and add it to its tag sets, each kept at least as long as the value (KEYS: value, tag sets;
ARGV: bytes, TTL in ms or '')."""

_EXPIRE = Script.file("cache_expire")
"""Give a value a new TTL (ARGV: ms or '' for none, the tag-set key prefix) and keep its tag sets at least
as long; 0 when the key does not exist."""

_INCR = Script.file("cache_incr")
"""INCRBY, with the TTL applied only when it creates the key; on an envelope holding an integer, add to it
and keep its freshness, tags and TTL (exact below 2**53). A bare counter's result is returned as the stored
decimal string: a Lua number is a double, so returning INCRBY's reply would round results past 2**53."""

_RELEASE = Script.file("cache_release_lock")
"""Delete the lock only if this token still holds it."""

_INVALIDATE = Script.file("cache_invalidate")
"""Remove the values of one tag set still carrying its tag (KEYS: the set, members read from it; ARGV:
the escaped tag), and forget them; the set goes once empty."""

_TAG_SLOT = Script.file("cache_tag_slot")
"""On a cluster: add a slot to a tag's index of slots, kept at least as long as its per-slot sets."""

_SCRIPTS: Final = (_SET_TAGGED, _EXPIRE, _INCR, _RELEASE, _INVALIDATE, _TAG_SLOT)
_EXPIRE_TRIES: Final = 5  # a value re-tagged between the read and the script, five times running, is left


def _escape_tag(tag: str) -> str:
    if _TAG_SPECIALS.search(tag) is None:
        return tag
    return tag.replace("%", "%25").replace(",", "%2C").replace("\t", "%09").replace("\n", "%0A")


def _decode_tags(field: bytes) -> tuple[str, ...]:
    text = field.decode()
    if "%" in text:
        return tuple(unquote(tag) for tag in text.split(","))
    return tuple(text.split(","))


def _chunks(members: list[bytes]) -> list[list[bytes]]:
    """Tag set members in script-sized batches (a few hundred keys per EVALSHA)."""
    return [members[start : start + _UNLINK_BATCH] for start in range(0, len(members), _UNLINK_BATCH)]


def _ms(ttl: float) -> int:
    """A TTL in whole milliseconds; a positive TTL is at least 1 ms (0 would mean 'expired')."""
    return max(round(ttl * 1000), 1) if ttl > 0 else 0


class _Missed:
    """Keys, tags and namespaces changed locally during an outage: Redis's copies of them are older.

    Bounded: past ``_MISSED_MAX`` keys, a key's whole namespace is remembered instead.
    """

    __slots__ = ("_lock", "keys", "namespaces", "tags")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: set[str] = set()
        self.tags: set[str] = set()
        self.namespaces: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.keys or self.tags or self.namespaces)

    def add(self, keys: Sequence[str] = (), tags: Sequence[str] = (), namespace: str | None = None) -> None:
        with self._lock:
            if len(self.keys) + len(keys) <= _MISSED_MAX:
                self.keys.update(keys)
            else:
                self.namespaces.update(namespace_of(key) for key in keys)
            self.tags.update(tags)
            if namespace is not None:
                self.namespaces.add(namespace)

    def take(self) -> tuple[list[str], list[str], list[str]]:
        with self._lock:
            taken = sorted(self.keys), sorted(self.tags), sorted(self.namespaces)
            self.keys, self.tags, self.namespaces = set(), set(), set()
        return taken


class RedisBackend:
    """A cache backend on Redis (redis-py, pooled), serving from memory while Redis is unreachable.

    ``url`` is a ``redis://``, ``rediss://``, ``unix://`` or ``redis+cluster://`` URL; ``prefix``
    starts every key so several services share one Redis. ``serializer`` turns values into bytes (JSON by
    default; msgpack, or pickle signed with a key). ``socket_timeout`` bounds how long a call waits on a
    Redis that hangs before it is served from ``fallback`` instead. Sync callers share one connection pool
    of ``max_connections``; each event loop gets its own ``redis.asyncio`` client. The connection, its
    timeout default, pool and reconnect rule are the Redis layer's (:mod:`buttress._redis`); this
    backend adds the fallback.

    An async call served from memory (an outage) does not suspend, as no in-process cache call does.
    """

    name: ClassVar[str] = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "buttress:cache",
        serializer: Serializer | None = None,
        clock: Clock = SYSTEM_CLOCK,
        socket_timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = POOL_SIZE,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        fallback: MemoryBackend | None = None,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        _validate(serializer=serializer, fallback=fallback)
        connection = self._connection = RedisConnection(
            url,
            prefix=prefix,
            timeout=socket_timeout,
            max_connections=max_connections,
            clock=clock,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            scripts=_SCRIPTS,
            on_down=self._went_down,
            on_up=self._came_back,
        )
        self.url = url
        self.prefix = prefix
        self.serializer: Serializer = serializer if serializer is not None else JsonSerializer()
        self.clock = clock
        self.socket_timeout = connection.timeout
        self.max_connections = max_connections
        self.fallback = fallback if fallback is not None else MemoryBackend(max_entries=10_000, clock=clock)
        self._label = connection.label
        self._prefix = f"{prefix}:"
        self._tag_prefix = f"{prefix}:~tag:"
        self._slots_prefix = f"{prefix}:~tagslots:"
        self._cluster = topology(url) == "cluster"
        """Tag sets per slot, with an index (:mod:`buttress.cache._slots`); chosen once, here."""
        self._lock_prefix = f"{prefix}:~lock:"
        self._loads = self.serializer.loads
        self._dumps = self.serializer.dumps
        self._response_error = connection.response_error
        # Commands and plans run on the layer's connection, under its outage rule: UNAVAILABLE while down.
        self._run = connection.call
        # The sync client's execute_command, unbound: what ``execute`` calls, one frame less on a get.
        self._command = type(connection.client()).execute_command
        self._arun = connection.acall
        self._drive = connection.drive
        self._adrive = connection.adrive
        self.degraded_calls: Tally = connection.calls
        """Calls served by ``fallback`` because Redis was unreachable."""
        self.rejected = Tally()
        """Values read from Redis that did not decode (tampered, foreign), treated as misses and deleted."""
        self._missed = _Missed()
        self._replayer: threading.Thread | None = None
        self._events = events
        if metrics is None:
            from buttress.observe.metrics import get_metrics  # noqa: PLC0415 - keep imports light

            metrics = get_metrics()
        self._metrics: MetricsRegistry = metrics
        self._export_lock = threading.Lock()
        self._exported = {DEGRADED_CALLS_METRIC: 0, REJECTED_METRIC: 0}
        metrics.add_collect_hook(self._export)

    def __repr__(self) -> str:
        state = "available" if self.available else "degraded"
        return f"RedisBackend({self._label!r}, prefix={self.prefix!r}, {self.serializer.name}, {state})"

    @property
    def available(self) -> bool:
        """False while Redis is considered unreachable (from a failure until a call succeeds again)."""
        return self._connection.outage.down_since is None

    def redis_key(self, key: str) -> str:
        """The Redis key that holds ``key`` (for tools and benchmarks that read Redis directly)."""
        return self._prefix + key

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync connection pool and stop exporting metrics (async clients: :meth:`aclose`)."""
        self._connection.close()
        self._metrics.remove_collect_hook(self._export)

    async def aclose(self) -> None:
        """Close the running loop's async client, then everything :meth:`close` closes."""
        await self._connection.aclose()
        self._metrics.remove_collect_hook(self._export)

    # -- encoding -------------------------------------------------------------------------------------

    def _encode(self, entry: Entry) -> bytes:
        value = entry.value
        fresh = "" if entry.fresh_until == NEVER else repr(float(entry.fresh_until))
        tags = ",".join(_escape_tag(tag) for tag in entry.tags) if entry.tags else ""
        if type(value) is int and -_INT64 <= value < _INT64:
            if not fresh and not tags:
                return str(value).encode()  # a bare integer: what INCRBY reads and writes
            return f"#{fresh}\t{tags}\n{value}".encode()
        return f"{fresh}\t{tags}\n".encode() + self._dumps(value)

    def _decode(self, key: str, data: bytes) -> Entry | None:
        """The entry ``data`` encodes, or None (logged, counted) when it does not decode."""
        try:
            head, newline, payload = data.partition(b"\n")
            if not newline:
                return Entry(int(head))
            fresh, _, tags = head.partition(b"\t")
            entry = _new_entry(Entry)  # filled in place: one frame (Entry.__init__) less on every hit
            if fresh.startswith(b"#"):
                entry.value = int(payload)
                fresh = fresh[1:]
            else:
                entry.value = self._loads(payload)
            entry.fresh_until = float(fresh) if fresh else NEVER
            entry.tags = _decode_tags(tags) if tags else ()
        except Exception as exc:  # noqa: BLE001 - any undecodable value is a miss, never the caller's error
            self._reject(key, exc)
            return None
        return entry

    def _reject(self, key: str, exc: Exception) -> None:
        """Count and log a value that is not one this backend wrote; the caller deletes it."""
        self.rejected.add()
        logger.warning(
            "redis cache %s: the value of %r did not decode (%s: %s); deleted it, a miss",
            self._label,
            key,
            type(exc).__name__,
            exc,
        )

    def _set_args(self, key: str, entry: Entry, ttl: float | None) -> tuple[Any, ...]:
        """The command that stores ``entry`` under ``key`` (with its tags) for ``ttl`` seconds."""
        rkey = self._prefix + key
        if ttl is not None and ttl <= 0:
            return ("UNLINK", rkey)  # already past its TTL, as the memory backend would have it
        data = self._encode(entry)
        if entry.tags:
            tag_keys = self._tag_keys(rkey, entry.tags)
            ms = "" if ttl is None else _ms(ttl)
            return ("EVALSHA", _SET_TAGGED.sha, 1 + len(tag_keys), rkey, *tag_keys, data, ms)
        if ttl is None:
            return ("SET", rkey, data)
        return ("SET", rkey, data, "PX", _ms(ttl))

    def _tag_keys(self, rkey: str, tags: Sequence[str]) -> list[str]:
        """The tag sets a value at ``rkey`` joins: one per tag, on a cluster in ``rkey``'s slot."""
        if not self._cluster:
            return [self._tag_prefix + tag for tag in tags]
        prefix = f"{self._tag_prefix}{{{slot_tag(key_slot(rkey))}}}:"
        return [prefix + tag for tag in tags]

    def _index_args(self, rkey: str, tags: Sequence[str], ttl: float | None) -> list[tuple[Any, ...]]:
        """On a cluster, the commands that list ``rkey``'s slot in each tag's index (none elsewhere)."""
        if not self._cluster or not tags or (ttl is not None and ttl <= 0):
            return []
        slot, ms = key_slot(rkey), "" if ttl is None else _ms(ttl)
        return [("EVALSHA", _TAG_SLOT.sha, 1, self._slots_prefix + tag, slot, ms) for tag in tags]

    # -- plans: every operation, for the sync and the async methods ------------------------------------

    def _get_many_plan(self, keys: Sequence[str]) -> Plan[list[Entry | None]]:
        if not keys:
            return []
        rkeys = [self._prefix + key for key in keys]
        replies = yield (execute, "MGET", *rkeys)
        if replies is UNAVAILABLE:
            return self.fallback.get_many(keys)
        entries: list[Entry | None] = []
        rejected: list[str] = []
        for key, rkey, data in zip(keys, rkeys, replies, strict=True):
            entry = None if data is None else self._decode(key, data)
            if entry is None and data is not None:
                rejected.append(rkey)
            entries.append(entry)
        if rejected:
            yield (execute, "UNLINK", *rejected)
        return entries

    def _set_plan(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> Plan[None]:
        if not items:
            return
        if len(items) == 1 and not (self._cluster and items[0][1].tags):
            reply = yield (execute, *self._set_args(items[0][0], items[0][1], ttl))
        else:
            commands = [self._set_args(key, entry, ttl) for key, entry in items]
            if self._cluster:
                for key, entry in items:
                    commands.extend(self._index_args(self._prefix + key, entry.tags, ttl))
            reply = yield (pipeline, commands)
        if reply is UNAVAILABLE:
            self.fallback.set_many(items, ttl)
            self._missed.add(keys=[key for key, _ in items])

    def _delete_plan(self, keys: Sequence[str]) -> Plan[int]:
        if not keys:
            return 0
        removed = yield (execute, "UNLINK", *(self._prefix + key for key in keys))
        if removed is UNAVAILABLE:
            self._missed.add(keys=keys)
            return self.fallback.delete(keys)
        return int(removed)

    def _exists_plan(self, key: str) -> Plan[bool]:
        count = yield (execute, "EXISTS", self._prefix + key)
        if count is UNAVAILABLE:
            return self.fallback.exists(key)
        return bool(count)

    def _incr_plan(self, key: str, delta: int, ttl: float | None) -> Plan[int]:
        if not isinstance(delta, int) or isinstance(delta, bool) or not -_INT64 <= delta < _INT64:
            raise ValidationError(
                f"incr delta must be a 64-bit integer, got {delta!r}; e.g. 1", field="delta"
            )
        ms = "" if ttl is None else _ms(ttl)
        try:
            value = yield (execute, "EVALSHA", _INCR.sha, 1, self._prefix + key, delta, ms)
        except self._response_error as exc:
            reason = "it would leave 64-bit range" if "RANGE" in str(exc) else "it does not hold an integer"
            raise ValidationError(
                f"cannot increment key {key!r}: {reason}; delete it first or use another key", field="key"
            ) from exc
        if value is UNAVAILABLE:
            self._missed.add(keys=(key,))
            return self.fallback.incr(key, delta, ttl)
        return int(value)

    def _expire_plan(self, key: str, ttl: float | None) -> Plan[bool]:
        rkey, ms = self._prefix + key, "" if ttl is None else _ms(ttl)
        field, tags = (
            b"",
            cast("tuple[str, ...]", ()),
        )  # first guess: no tags (one round trip); the script says if it has some
        for _ in range(_EXPIRE_TRIES):
            tag_keys = self._tag_keys(rkey, tags)
            reply = yield (execute, "EVALSHA", _EXPIRE.sha, 1 + len(tag_keys), rkey, *tag_keys, ms, field)
            if reply is UNAVAILABLE:
                self._missed.add(keys=(key,))
                return self.fallback.expire(key, ttl)
            if not isinstance(reply, list):
                if reply and tags and self._cluster:
                    yield (pipeline, self._index_args(rkey, tags, ttl))
                return bool(reply)
            field = reply[0]
            tags = _decode_tags(field) if field else ()
        return False

    def _clear_plan(self, namespace: str) -> Plan[int]:
        pattern = _GLOB.sub(r"\\\1", f"{self._prefix}{namespace}:") + "*"
        removed, cursor = 0, 0
        while True:
            reply = yield (execute, "SCAN", cursor, "MATCH", pattern, "COUNT", _SCAN_COUNT)
            if reply is UNAVAILABLE:
                break
            cursor, found = reply
            if found:
                unlinked = yield (execute, "UNLINK", *found)
                if unlinked is UNAVAILABLE:
                    break
                removed += unlinked
            if cursor == 0:
                return removed
        self._missed.add(namespace=namespace)
        return removed + self.fallback.clear(namespace)

    def _invalidate_plan(self, tags: Sequence[str]) -> Plan[int]:
        """Read each tag's set(s), then remove their members that still carry the tag, set by set."""
        if not tags:
            return 0
        sets = yield from self._tag_sets_plan(tags)
        if not sets:
            return 0 if sets is not None else self._invalidate_locally(tags)
        members = yield (pipeline, [("SMEMBERS", key) for key, _ in sets])
        if members is UNAVAILABLE:
            return self._invalidate_locally(tags)
        commands = [
            ("EVALSHA", _INVALIDATE.sha, 1 + len(chunk), tag_key, *chunk, escaped)
            for (tag_key, escaped), found in zip(sets, members, strict=True)
            for chunk in _chunks(sorted(found))
        ]
        removed = (yield (pipeline, commands)) if commands else []
        if removed is UNAVAILABLE:
            return self._invalidate_locally(tags)
        return sum(int(count) for count in removed)

    def _tag_sets_plan(self, tags: Sequence[str]) -> Plan[list[tuple[str, str]] | None]:
        """``(tag set key, escaped tag)`` of every set holding ``tags``; None when Redis is unreachable.

        One set per tag, or on a cluster one per slot its index lists (:mod:`buttress.cache._slots`).
        """
        if not self._cluster:
            return [(self._tag_prefix + tag, _escape_tag(tag)) for tag in tags]
        slots = yield (pipeline, [("SMEMBERS", self._slots_prefix + tag) for tag in tags])
        if slots is UNAVAILABLE:
            return None
        return [
            (f"{self._tag_prefix}{{{slot_tag(int(slot))}}}:{tag}", _escape_tag(tag))
            for tag, listed in zip(tags, slots, strict=True)
            for slot in sorted(listed)
        ]

    def _invalidate_locally(self, tags: Sequence[str]) -> int:
        self._missed.add(tags=tags)
        return self.fallback.invalidate_tags(tags)

    def _acquire_plan(self, key: str, token: str, lease: float) -> Plan[bool]:
        taken = yield (execute, "SET", self._lock_prefix + key, token, "NX", "PX", max(_ms(lease), 1))
        return True if taken is UNAVAILABLE else bool(taken)  # unreachable: compute locally rather than wait

    def _release_plan(self, key: str, token: str) -> Plan[None]:
        yield (execute, "EVALSHA", _RELEASE.sha, 1, self._lock_prefix + key, token)

    # -- the sync API -----------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        # Written out rather than planned: this is the hot path (one GET and a decode).
        rkey = self._prefix + key
        try:
            data = self._run(self._command, "GET", rkey)
        except self._response_error as exc:  # WRONGTYPE: a key under the prefix that is not a string
            self._reject(key, exc)
            entry = None
        else:
            if data is None:
                return None
            if data is UNAVAILABLE:
                return self.fallback.get(key)
            entry = self._decode(key, data)
        if entry is None:
            self._run(execute, "UNLINK", rkey)
        return entry

    def get_many(self, keys: Sequence[str]) -> list[Entry | None]:
        return self._drive(self._get_many_plan(keys))

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        self._drive(self._set_plan(((key, entry),), ttl))

    def set_many(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> None:
        self._drive(self._set_plan(items, ttl))

    def delete(self, keys: Sequence[str]) -> int:
        return self._drive(self._delete_plan(keys))

    def exists(self, key: str) -> bool:
        return self._drive(self._exists_plan(key))

    def incr(self, key: str, delta: int, ttl: float | None) -> int:
        return self._drive(self._incr_plan(key, delta, ttl))

    def expire(self, key: str, ttl: float | None) -> bool:
        return self._drive(self._expire_plan(key, ttl))

    def clear(self, namespace: str) -> int:
        return self._drive(self._clear_plan(namespace))

    def invalidate_tags(self, tags: Sequence[str]) -> int:
        return self._drive(self._invalidate_plan(tags))

    def acquire_lock(self, key: str, token: str, lease: float) -> bool:
        return self._drive(self._acquire_plan(key, token, lease))

    def release_lock(self, key: str, token: str) -> None:
        self._drive(self._release_plan(key, token))

    # -- the async API ----------------------------------------------------------------------------------

    async def aget(self, key: str) -> Entry | None:
        rkey = self._prefix + key
        try:
            data = await self._arun(execute, "GET", rkey)
        except self._response_error as exc:
            self._reject(key, exc)
            entry = None
        else:
            if data is None:
                return None
            if data is UNAVAILABLE:
                return self.fallback.get(key)
            entry = self._decode(key, data)
        if entry is None:
            await self._arun(execute, "UNLINK", rkey)
        return entry

    async def aget_many(self, keys: Sequence[str]) -> list[Entry | None]:
        return await self._adrive(self._get_many_plan(keys))

    async def aset(self, key: str, entry: Entry, ttl: float | None) -> None:
        await self._adrive(self._set_plan(((key, entry),), ttl))

    async def aset_many(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> None:
        await self._adrive(self._set_plan(items, ttl))

    async def adelete(self, keys: Sequence[str]) -> int:
        return await self._adrive(self._delete_plan(keys))

    async def aexists(self, key: str) -> bool:
        return await self._adrive(self._exists_plan(key))

    async def aincr(self, key: str, delta: int, ttl: float | None) -> int:
        return await self._adrive(self._incr_plan(key, delta, ttl))

    async def aexpire(self, key: str, ttl: float | None) -> bool:
        return await self._adrive(self._expire_plan(key, ttl))

    async def aclear(self, namespace: str) -> int:
        return await self._adrive(self._clear_plan(namespace))

    async def ainvalidate_tags(self, tags: Sequence[str]) -> int:
        return await self._adrive(self._invalidate_plan(tags))

    async def aacquire_lock(self, key: str, token: str, lease: float) -> bool:
        return await self._adrive(self._acquire_plan(key, token, lease))

    async def arelease_lock(self, key: str, token: str) -> None:
        await self._adrive(self._release_plan(key, token))

    # -- outages ----------------------------------------------------------------------------------------

    def probe(self) -> float:
        """While Redis is marked down, PING it if a probe is due (the outage rule decides); the seconds
        until the next probe is due, or 0.0 once Redis is available.

        For owners that must notice a recovery without calling the backend (a tiered cache whose reads
        all hit L1): they call this from a thread of their own while the backend is down.
        """
        if self.available:
            return 0.0
        self._run(execute, "PING")
        return self._connection.outage.retry_in()

    def _went_down(self, error: str) -> None:
        dropped = self.fallback.clear_all()  # leftovers of an earlier outage are older than Redis's values
        logger.warning(
            "redis cache %s unreachable (%s); serving from the in-process memory cache until it returns",
            self._label,
            error,
        )
        self._emit("degraded", error=error, dropped_local=dropped)

    def _came_back(self, outage: float) -> None:
        dropped = self.fallback.clear_all()  # what was computed here may be stale to other processes
        logger.warning(
            "redis cache %s is back after %.1f s; dropped %d entries cached locally during the outage",
            self._label,
            outage,
            dropped,
        )
        self._emit("recovered", outage_seconds=round(outage, 3), dropped_local=dropped)
        if self._missed:
            self._replayer = threading.Thread(
                target=self._replay, name="buttress-cache-redis-replay", daemon=True
            )
            self._replayer.start()

    def _replay(self) -> None:
        """Delete from Redis what this process changed locally during the outage (its copies are older)."""
        keys, tags, namespaces = self._missed.take()
        plans: list[Plan[int]] = [
            self._delete_plan(keys[start : start + _UNLINK_BATCH])
            for start in range(0, len(keys), _UNLINK_BATCH)
        ]
        plans.append(self._invalidate_plan(tags))
        plans.extend(self._clear_plan(namespace) for namespace in namespaces)
        for plan in plans:  # a new outage records what is left (the plans add it back), for next time
            self._drive(plan)
        logger.info(
            "redis cache %s: dropped %d keys, %d tags and %d namespaces changed locally during the outage",
            self._label,
            len(keys),
            len(tags),
            len(namespaces),
        )

    def _emit(self, what: str, **payload: Any) -> None:
        publish_quietly(self._events, f"cache.backend.{what}", {"backend": self._label, **payload})

    # -- reporting ----------------------------------------------------------------------------------------

    def _export(self, registry: MetricsRegistry) -> None:
        degraded = registry.gauge(
            DEGRADED_METRIC,
            "1 while a Redis cache backend is unreachable and calls are served from memory.",
            labels=("backend",),
        )
        degraded.labels(backend=self._label).set(0 if self.available else 1)
        counted = (
            (
                DEGRADED_CALLS_METRIC,
                "Cache calls served from memory while Redis was unreachable.",
                self.degraded_calls,
            ),
            (
                REJECTED_METRIC,
                "Cached values that did not decode (tampered, foreign) and were deleted.",
                self.rejected,
            ),
        )
        with self._export_lock:  # two concurrent scrapes must not export one delta twice
            for metric, description, tally in counted:
                value = tally.value
                if value > self._exported[metric]:
                    counter = registry.counter(metric, description, labels=("backend",))
                    counter.labels(backend=self._label).inc(value - self._exported[metric])
                    self._exported[metric] = value

    def info(self) -> BackendInfo:
        local = self.fallback.info()
        if self.available:
            detail = self._label
        else:
            detail = (
                f"{self._label} unreachable for {self._connection.outage_seconds():.0f} s "
                f"({self._connection.last_error}); serving from memory"
            )
        return BackendInfo(
            name=self.name,
            available=self.available,
            detail=detail,
            entries=local.entries,
            evictions=local.evictions,
            expired_unread=local.expired_unread,
            sizes=local.sizes,
        )

    def check(self) -> CheckResult:
        """Pass while Redis answers; warn (never fail) while calls are served from memory."""
        return self._connection.check(
            name="redis cache",
            consequence=f"serving from the in-process memory cache ({len(self.fallback)} entries, not shared "
            "with other processes) and reconnecting by itself",
        )


def _validate(*, serializer: object, fallback: object) -> None:
    """ValidationErrors for the arguments the Redis layer does not check (it checks url, prefix, timeouts)."""
    if serializer is not None and not isinstance(serializer, Serializer):
        raise ValidationError(
            f"serializer must be a Serializer (JsonSerializer(), MsgpackSerializer(), "
            f"SignedPickleSerializer(key)), got {type(serializer).__name__}",
            field="serializer",
        )
    if fallback is not None and not isinstance(fallback, MemoryBackend):
        raise ValidationError(
            f"fallback must be a MemoryBackend or None (a new one), got {type(fallback).__name__}",
            field="fallback",
        )
