"""The in-process backend: an LRU dict with TTLs, bounded by entries and optionally by bytes.

Reads take no lock: ``dict.get`` and ``OrderedDict.move_to_end`` are single C calls, atomic under the GIL,
so a read racing a write sees the old record or the new one, never half of one. Writes, evictions and the
tag index share one lock, held only for the dict operations (the user's function never runs under it).
Every operation is O(1) except :meth:`clear` and :meth:`invalidate_tags`, which touch what they remove.

TTLs run on the injected clock's monotonic time, so a wall-clock jump neither expires nor revives entries.
An expired entry is dropped when it is read, or when it reaches the least-recently-used end.
"""

from __future__ import annotations

import pickle
import sys
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import msgpack

from buttress.cache._backend import BackendInfo, Entry, namespace_of
from buttress.cache._roundtrip import RULES, value_checker
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError

if TYPE_CHECKING:
    from buttress.cache._serializers import Serializer
    from buttress.observe.health import CheckResult

__all__ = ["MemoryBackend", "estimate_size"]

_FOREVER = float("inf")
# A record is a list for speed: [entry, expires_at (monotonic), size in bytes, read since written].
_ENTRY, _EXPIRES, _SIZE, _READ = 0, 1, 2, 3
_SWEEP = 4  # expired records looked at from the LRU end on each write
_INT64 = 2**63  # counters stay signed 64-bit integers, as Redis keeps them


def _serializer_name(serializer: object) -> str | None:
    if serializer is None or serializer in RULES:
        return serializer
    name = getattr(serializer, "name", None)
    if isinstance(name, str) and callable(getattr(serializer, "dumps", None)):
        return name  # a custom serializer's name has no rule here: it answers for its own round trip
    raise ValidationError(
        f"serializer must be None (keep any object), one of {', '.join(RULES)}, or a Serializer, got "
        f"{serializer!r}; e.g. serializer='json' to refuse what Redis with JSON would change",
        field="serializer",
    )


def estimate_size(key: str, value: Any) -> int:
    """Bytes a value takes, for ``max_bytes``: its msgpack (or pickle) length plus the key's."""
    try:
        size = len(msgpack.packb(value, use_bin_type=True))
    except (TypeError, ValueError, OverflowError):
        try:
            size = len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except (TypeError, ValueError, AttributeError, pickle.PicklingError):
            size = sys.getsizeof(value)
    return size + len(key)


class MemoryBackend:
    """LRU + TTL storage in this process.

    ``max_entries`` bounds the number of keys; ``max_bytes`` (optional) bounds the estimated size of the
    values (``sizer(key, value)``, :func:`estimate_size` by default, measured only when set). Writing past
    either bound evicts least-recently-used keys; a single value larger than ``max_bytes`` is not stored.

    Values are kept as the objects given. With ``serializer`` (a serializer or its name: ``"json"``,
    ``"msgpack"``, ``"pickle"``), ``set`` refuses what that serializer would not return unchanged, as a
    Redis backend using it would (:mod:`buttress.cache._roundtrip`), so code tested on memory behaves the
    same on Redis. ``get_cache()`` passes the configured serializer.
    """

    name: ClassVar[str] = "memory"

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sizer: Callable[[str, Any], int] = estimate_size,
        serializer: Serializer | str | None = None,
    ) -> None:
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ValidationError(
                f"max_entries must be an integer >= 1, got {max_entries!r}; e.g. 10000",
                field="max_entries",
            )
        if max_bytes is not None and (
            not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1
        ):
            raise ValidationError(
                f"max_bytes must be an integer >= 1 or None (no byte bound), got {max_bytes!r}; "
                "e.g. 67108864 for 64 MiB",
                field="max_bytes",
            )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.serializer = _serializer_name(serializer)
        """The name of the serializer whose round-trip rule ``set`` applies; None keeps any object."""
        self._check = value_checker(self.serializer)
        self.clock = clock
        self._sizer = sizer
        self._now: Callable[[], float] = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self._data: OrderedDict[str, list[Any]] = OrderedDict()
        self._move = self._data.move_to_end
        self._lookup = self._data.get
        self._lock = threading.Lock()
        self._bytes = 0
        self._tags: defaultdict[str, set[str]] = defaultdict(set)
        self._evictions: defaultdict[str, int] = defaultdict(int)
        self._expired_unread: defaultdict[str, int] = defaultdict(int)

    def __repr__(self) -> str:
        bound = f", max_bytes={self.max_bytes}" if self.max_bytes is not None else ""
        return f"MemoryBackend({len(self._data)} entries, max_entries={self.max_entries}{bound})"

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bytes(self) -> int:
        """Estimated bytes held (0 unless ``max_bytes`` is set)."""
        return self._bytes

    # -- reads --------------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        record = self._lookup(key)
        if record is None:
            return None
        if record[_EXPIRES] <= self._now():
            self._drop_expired(key, record)
            return None
        try:  # noqa: SIM105 - contextlib.suppress costs a context manager on the hot path
            self._move(key)
        except KeyError:  # removed by another thread since the lookup; the record read is still valid
            pass
        if not record[_READ]:
            record[_READ] = True
        entry: Entry = record[_ENTRY]
        return entry

    def get_many(self, keys: Sequence[str]) -> list[Entry | None]:
        return [self.get(key) for key in keys]

    def exists(self, key: str) -> bool:
        record = self._lookup(key)
        return record is not None and record[_EXPIRES] > self._now()

    def peek(self, key: str) -> Entry | None:
        """The entry under ``key`` without refreshing its recency or checking its TTL (tiered uses it)."""
        record = self._lookup(key)
        return None if record is None else record[_ENTRY]

    # -- writes -------------------------------------------------------------------------------------

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        if self._check is not None:
            self._check(entry.value)
        expires = _FOREVER if ttl is None else self._now() + ttl
        max_bytes = self.max_bytes
        data = self._data
        if max_bytes is None:  # no byte bound: sizes are 0, so the byte count has nothing to do
            with self._lock:  # _remove() and the _make_room() test written out: every set comes here
                old = data.pop(key, None)
                if old is not None and old[_ENTRY].tags:
                    self._untag(key, old[_ENTRY].tags)
                data[key] = [entry, expires, 0, False]
                if entry.tags:
                    for tag in entry.tags:
                        self._tags[tag].add(key)
                if len(data) >= self.max_entries:
                    self._make_room()
            return
        size = self._sizer(key, entry.value)
        with self._lock:
            old = data.pop(key, None)
            if old is not None:
                self._bytes -= old[_SIZE]
                if old[_ENTRY].tags:
                    self._untag(key, old[_ENTRY].tags)
            if size > max_bytes:
                return  # larger than the whole cache: storing it would evict everything for nothing
            data[key] = [entry, expires, size, False]
            if entry.tags:
                for tag in entry.tags:
                    self._tags[tag].add(key)
            self._bytes += size
            self._make_room()

    def set_many(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> None:
        for key, entry in items:
            self.set(key, entry, ttl)

    def delete(self, keys: Sequence[str]) -> int:
        with self._lock:
            return self._remove_counting_live(keys)

    def incr(self, key: str, delta: int, ttl: float | None) -> int:
        if not isinstance(delta, int) or isinstance(delta, bool) or not -_INT64 <= delta < _INT64:
            raise ValidationError(
                f"incr delta must be a 64-bit integer, got {delta!r}; e.g. 1", field="delta"
            )
        with self._lock:
            record = self._data.get(key)
            if record is not None and record[_EXPIRES] <= self._now():
                self._remove(key)
                record = None
            if record is None:
                self._data[key] = [Entry(delta), _FOREVER if ttl is None else self._now() + ttl, 0, False]
                self._make_room()
                return delta
            entry: Entry = record[_ENTRY]
            current = entry.value
            if not isinstance(current, int) or isinstance(current, bool):
                raise ValidationError(
                    f"cannot increment key {key!r}: it holds a {type(current).__name__}, not an integer; "
                    "delete it first or use another key",
                    field="key",
                )
            if not -_INT64 <= current + delta < _INT64:
                raise ValidationError(
                    f"cannot increment key {key!r}: it would leave 64-bit range; "
                    "delete it first or use another key",
                    field="key",
                )
            record[_ENTRY] = Entry(current + delta, entry.fresh_until, entry.tags)
            self._move(key)
            return int(current + delta)

    def expire(self, key: str, ttl: float | None) -> bool:
        with self._lock:
            record = self._data.get(key)
            if record is None or record[_EXPIRES] <= self._now():
                return False
            record[_EXPIRES] = _FOREVER if ttl is None else self._now() + ttl
            return True

    def clear(self, namespace: str) -> int:
        prefix = f"{namespace}:"
        with self._lock:
            doomed = [key for key in self._data if key.startswith(prefix)]
            return self._remove_counting_live(doomed)

    def invalidate_tags(self, tags: Sequence[str]) -> int:
        with self._lock:
            doomed = {key for tag in tags for key in self._tags.get(tag, ())}
            return self._remove_counting_live(doomed)

    def clear_all(self) -> int:
        """Remove every entry (tiered uses it when a broadcast may have been missed)."""
        with self._lock:
            count = len(self._data)
            self._data.clear()
            self._tags.clear()
            self._bytes = 0
            return count

    # -- locks (one process: the Cache's single-flight is the lock) ----------------------------------

    def acquire_lock(self, key: str, token: str, lease: float) -> bool:
        return True

    def release_lock(self, key: str, token: str) -> None:
        return None

    # -- bookkeeping (callers hold the lock) ----------------------------------------------------------

    def _remove(self, key: str) -> bool:
        record = self._data.pop(key, None)
        if record is None:
            return False
        self._bytes -= record[_SIZE]
        self._untag(key, record[_ENTRY].tags)
        return True

    def _remove_counting_live(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; the number that were live (an expired record still held is not counted, as
        Redis, which has already dropped it, would not count it)."""
        now = self._now()
        removed = 0
        for key in keys:
            record = self._data.get(key)
            if record is not None and self._remove(key) and record[_EXPIRES] > now:
                removed += 1
        return removed

    def _untag(self, key: str, tags: Iterable[str]) -> None:
        for tag in tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]

    def _make_room(self) -> None:
        data = self._data
        if data and len(data) > self.max_entries - 1:
            self._sweep_expired()
        while len(data) > self.max_entries or (self.max_bytes is not None and self._bytes > self.max_bytes):
            key, record = data.popitem(last=False)
            self._bytes -= record[_SIZE]
            self._untag(key, record[_ENTRY].tags)
            if record[_EXPIRES] <= self._now():
                self._count_expired(key, record)
            else:
                self._evictions[namespace_of(key)] += 1

    def _sweep_expired(self) -> None:
        now = self._now()
        for key in _first(self._data, _SWEEP):
            record = self._data[key]
            if record[_EXPIRES] <= now:
                self._remove(key)
                self._count_expired(key, record)

    def _count_expired(self, key: str, record: list[Any]) -> None:
        if not record[_READ]:
            self._expired_unread[namespace_of(key)] += 1

    def _drop_expired(self, key: str, record: list[Any]) -> None:
        with self._lock:
            if self._data.get(key) is record:
                self._remove(key)
                self._count_expired(key, record)

    # -- reporting ------------------------------------------------------------------------------------

    def info(self) -> BackendInfo:
        with self._lock:
            keys = list(self._data)
            evictions = dict(self._evictions)
            expired_unread = dict(self._expired_unread)
        sizes: defaultdict[str, int] = defaultdict(int)
        for key in keys:
            sizes[namespace_of(key)] += 1
        return BackendInfo(
            name=self.name,
            available=True,
            detail=f"in-process LRU, max {self.max_entries} entries",
            entries=len(keys),
            evictions=evictions,
            expired_unread=expired_unread,
            sizes=dict(sizes),
        )

    def check(self) -> CheckResult:
        from buttress.observe.health import CheckResult  # noqa: PLC0415 - keep imports light

        return CheckResult(
            "pass",
            f"memory cache, {len(self._data)} of {self.max_entries} entries",
            observed_value=len(self._data),
            observed_unit="entries",
        )

    def close(self) -> None:
        return None

    # -- async twins: nothing here blocks, so they call the sync methods --------------------------------

    async def aget(self, key: str) -> Entry | None:
        return self.get(key)

    async def aget_many(self, keys: Sequence[str]) -> list[Entry | None]:
        return self.get_many(keys)

    async def aset(self, key: str, entry: Entry, ttl: float | None) -> None:
        self.set(key, entry, ttl)

    async def aset_many(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> None:
        self.set_many(items, ttl)

    async def adelete(self, keys: Sequence[str]) -> int:
        return self.delete(keys)

    async def aexists(self, key: str) -> bool:
        return self.exists(key)

    async def aincr(self, key: str, delta: int, ttl: float | None) -> int:
        return self.incr(key, delta, ttl)

    async def aexpire(self, key: str, ttl: float | None) -> bool:
        return self.expire(key, ttl)

    async def aclear(self, namespace: str) -> int:
        return self.clear(namespace)

    async def ainvalidate_tags(self, tags: Sequence[str]) -> int:
        return self.invalidate_tags(tags)

    async def aacquire_lock(self, key: str, token: str, lease: float) -> bool:
        return True

    async def arelease_lock(self, key: str, token: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _first(data: OrderedDict[str, list[Any]], count: int) -> list[str]:
    keys: list[str] = []
    for key in data:
        keys.append(key)
        if len(keys) == count:
            break
    return keys
