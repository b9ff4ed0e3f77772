"""The tiered backend: a short-lived in-process L1 (memory) in front of a shared L2 (usually Redis).

An L1 hit costs one dict lookup and no network; a miss reads L2 and keeps a copy in L1 for ``l1_ttl``
seconds. Every write, delete, clear, tag invalidation, increment and expire goes to L2 first, then to L1,
and is broadcast on the event bus topic ``cache.invalidate`` (payload ``{"keys": [...]}``,
``{"namespace": ns}`` or ``{"tags": [...]}``, plus the sender's ``source`` id) so every other tiered
backend drops its L1 copies. The broadcast crosses processes only on a bus with the Redis transport
(``create_event_bus("redis", ...)``); on a memory bus it reaches the tiered backends of this process only.
A backend skips its own broadcasts by ``source``, not by bus id, so two tiered backends sharing one bus
still invalidate each other. A lost broadcast is bounded: L1 copies live ``l1_ttl`` seconds.

A read that races an invalidation never re-fills L1 with the value read before it: invalidations bump a
generation (per key stripe, or for everything on a namespace or tag clear) and a miss only fills L1 when
its generations are unchanged since it started reading L2.

When L2 reports ``available == False`` after a call, L1 keeps serving what it holds for the full TTL the
entries were stored with (not just ``l1_ttl``), and writes land in L1 with their full TTL. When L2 reports
available again, L1 is cleared: broadcasts sent during the outage went through the same unreachable Redis.
A process whose reads all hit L1 makes no L2 call, so while L2 is down a background thread probes it
(``l2.probe()``, one PING per L2 reconnect interval): L1 is cleared within one probe interval of Redis
returning, whether or not the process reads. The probe waits on the injected clock (in tests, a
``FakeClock(auto_advance=False)`` drives it; with one whose sleeps return at once, no probe runs).
L1 is also cleared each time the bus's Redis transport (re)subscribes, since broadcasts published while
it was reconnecting are lost. Each clear is published as ``cache.l1.cleared`` (``{"reason":
"recovered" | "resubscribed" | "dropped", "entries": n, "source": id}``).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from buttress.cache._backend import NEVER, BackendInfo, CacheBackend, Entry
from buttress.cache._memory import MemoryBackend
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError
from buttress.events import Event, EventBus, EventBusClosed, Subscription, publish_quietly

if TYPE_CHECKING:
    from buttress.observe.health import CheckResult

__all__ = ["INVALIDATE_TOPIC", "L1_CLEARED_TOPIC", "TieredBackend"]

logger = logging.getLogger("buttress.cache")

INVALIDATE_TOPIC = "cache.invalidate"
L1_CLEARED_TOPIC = "cache.l1.cleared"
_STRIPES = 1024  # generation counters, one per hash stripe of the key space (a power of two)
_MASK = _STRIPES - 1
_MIN_PROBE_WAIT = 0.01  # seconds; the probe thread never spins, whatever L2 says
_Snapshot = tuple[int, list[int]]  # (epoch, stripe generations of the keys read)


class TieredBackend:
    """L1 memory in front of ``l2`` (any :class:`~buttress.cache.CacheBackend`), kept coherent by ``bus``.

    ``l1`` defaults to ``MemoryBackend(clock=clock)``; ``l1_ttl`` is how long an L1 copy is served without
    asking L2 (the staleness bound when a broadcast is lost). The tiered backend owns both tiers (close
    closes them) but not the bus, unless ``owns_bus`` (a bus built only to carry its invalidations).
    """

    name: ClassVar[str] = "tiered"
    queue_size: ClassVar[int] = 10_000
    """Broadcasts waiting for this backend's handler (its own, which it skips, count too). When they
    overflow, one was lost, so L1 is cleared."""

    def __init__(
        self,
        l2: CacheBackend,
        *,
        l1: MemoryBackend | None = None,
        l1_ttl: float = 5.0,
        bus: EventBus | None = None,
        clock: Clock = SYSTEM_CLOCK,
        owns_bus: bool = False,
    ) -> None:
        if not isinstance(l2, CacheBackend):
            raise ValidationError(
                f"l2 must be a cache backend (RedisBackend, MemoryBackend, ...), got {type(l2).__name__}",
                field="l2",
            )
        if isinstance(l1_ttl, bool) or not isinstance(l1_ttl, int | float) or not 0 < l1_ttl < math.inf:
            raise ValidationError(
                f"l1_ttl must be a number of seconds > 0, got {l1_ttl!r}; e.g. 5.0", field="l1_ttl"
            )
        self.l2 = l2
        self.l1 = l1 if l1 is not None else MemoryBackend(clock=clock)
        self.l1_ttl = float(l1_ttl)
        self.bus = bus
        self._owns_bus = owns_bus and bus is not None
        self._l1_get: Callable[[str], Entry | None] = self.l1.get
        self._monotonic = clock.monotonic
        self._time = clock.time
        self._lock = threading.Lock()  # L1 fills and invalidations; never taken on the hit path
        self._epoch = 0
        self._stripes = [0] * _STRIPES
        self._keep: dict[str, float] = {}  # key -> monotonic deadline of the full TTL (for outages)
        self._keep_limit = 2 * self.l1.max_entries
        self._degraded = not getattr(l2, "available", True)
        self.source = uuid.uuid4().hex
        """Sent with every broadcast, so this backend recognises (and skips) its own."""
        self._dropped_seen = 0
        self._closed = False
        self._clock = clock
        self._probe: Callable[[], float] | None = getattr(l2, "probe", None)
        self._prober: threading.Thread | None = None
        self._wake = threading.Event()  # set by close, so a probe thread on the system clock stops at once
        self._subscription: Subscription | None = (
            bus.subscribe(INVALIDATE_TOPIC, self._on_invalidate, queue_size=self.queue_size)
            if bus is not None
            else None
        )
        on_subscribed = getattr(bus.transport, "on_subscribed", None) if bus is not None else None
        self._unhook: Callable[[], None] | None = (
            on_subscribed(self._resubscribed) if callable(on_subscribed) else None
        )
        if self._degraded:
            with self._lock:
                self._start_probe()

    def __repr__(self) -> str:
        return f"TieredBackend(l1={self.l1!r}, l1_ttl={self.l1_ttl:g}, l2={self.l2!r})"

    @property
    def degraded(self) -> bool:
        """True since a call found L2 unavailable, until a later call finds it back."""
        return self._degraded

    # -- reads --------------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        entry = self._l1_get(key)
        if entry is not None:
            return entry
        snapshot = self._snapshot((key,))
        entry = self.l2.get(key)
        self._watch_l2()
        if entry is not None:
            self._fill((key,), (entry,), snapshot)
        return entry

    def get_many(self, keys: Sequence[str]) -> list[Entry | None]:
        found, missing = self._split(keys)
        if missing:
            wanted = [keys[i] for i in missing]
            snapshot = self._snapshot(wanted)
            self._merge(found, missing, wanted, self.l2.get_many(wanted), snapshot)
        return found

    def exists(self, key: str) -> bool:
        return self.l1.exists(key) or self.l2.exists(key)

    # -- writes -------------------------------------------------------------------------------------

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        self.l2.set(key, entry, ttl)
        self._after_set(((key, entry),), ttl)

    def set_many(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> None:
        self.l2.set_many(items, ttl)
        self._after_set(items, ttl)

    def delete(self, keys: Sequence[str]) -> int:
        removed = self.l2.delete(keys)
        return self._after_delete(keys, removed)

    def incr(self, key: str, delta: int, ttl: float | None) -> int:
        value = self.l2.incr(key, delta, ttl)
        self._after_delete((key,), 0)  # the next read takes the counter from L2 (or its fallback)
        return value

    def expire(self, key: str, ttl: float | None) -> bool:
        changed = self.l2.expire(key, ttl)
        return self._after_expire(key, ttl, changed)

    def clear(self, namespace: str) -> int:
        removed = self.l2.clear(namespace)
        self._watch_l2()
        local = self._drop_namespace(namespace)
        self._publish({"namespace": namespace})
        return max(removed, local) if self._degraded else removed

    def invalidate_tags(self, tags: Sequence[str]) -> int:
        removed = self.l2.invalidate_tags(tags)
        self._watch_l2()
        local = self._drop_tags(tags)
        self._publish({"tags": list(tags)})
        return max(removed, local) if self._degraded else removed

    # -- locks: the cross-process lock lives in L2 ----------------------------------------------------

    def acquire_lock(self, key: str, token: str, lease: float) -> bool:
        return self.l2.acquire_lock(key, token, lease)

    def release_lock(self, key: str, token: str) -> None:
        self.l2.release_lock(key, token)

    # -- reporting and lifecycle ------------------------------------------------------------------------

    def info(self) -> BackendInfo:
        l1, l2 = self.l1.info(), self.l2.info()
        return BackendInfo(
            name=self.name,
            available=l2.available,
            detail=f"L1 memory ({self.l1_ttl:g} s) + L2 {l2.detail}",
            entries=l1.entries,
            evictions=l1.evictions,
            expired_unread=l1.expired_unread,
            sizes=l1.sizes,
        )

    def check(self) -> CheckResult:
        from buttress.observe.health import CheckResult  # noqa: PLC0415 - keep imports light

        l2 = self.l2.check()
        if l2.status != "pass":
            return l2
        held = len(self.l1)
        return CheckResult(
            "pass",
            f"tiered cache: L1 memory {held} entries (l1_ttl {self.l1_ttl:g} s) + L2 {self.l2.name}: "
            f"{l2.output}",
            observed_value=held,
            observed_unit="entries",
        )

    def close(self) -> None:
        """Stop listening for broadcasts and close both tiers (and the bus, when it owns it)."""
        if self._stop():
            self.l2.close()
            self.l1.close()
            if self._owns_bus and self.bus is not None:
                self.bus.close()

    # -- async twins: L1 never blocks; only L2 is awaited -------------------------------------------------

    async def aget(self, key: str) -> Entry | None:
        entry = self._l1_get(key)
        if entry is not None:
            return entry
        snapshot = self._snapshot((key,))
        entry = await self.l2.aget(key)
        self._watch_l2()
        if entry is not None:
            self._fill((key,), (entry,), snapshot)
        return entry

    async def aget_many(self, keys: Sequence[str]) -> list[Entry | None]:
        found, missing = self._split(keys)
        if missing:
            wanted = [keys[i] for i in missing]
            snapshot = self._snapshot(wanted)
            self._merge(found, missing, wanted, await self.l2.aget_many(wanted), snapshot)
        return found

    async def aexists(self, key: str) -> bool:
        return self.l1.exists(key) or await self.l2.aexists(key)

    async def aset(self, key: str, entry: Entry, ttl: float | None) -> None:
        await self.l2.aset(key, entry, ttl)
        self._after_set(((key, entry),), ttl)

    async def aset_many(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> None:
        await self.l2.aset_many(items, ttl)
        self._after_set(items, ttl)

    async def adelete(self, keys: Sequence[str]) -> int:
        removed = await self.l2.adelete(keys)
        return self._after_delete(keys, removed)

    async def aincr(self, key: str, delta: int, ttl: float | None) -> int:
        value = await self.l2.aincr(key, delta, ttl)
        self._after_delete((key,), 0)
        return value

    async def aexpire(self, key: str, ttl: float | None) -> bool:
        changed = await self.l2.aexpire(key, ttl)
        return self._after_expire(key, ttl, changed)

    async def aclear(self, namespace: str) -> int:
        removed = await self.l2.aclear(namespace)
        self._watch_l2()
        local = self._drop_namespace(namespace)
        self._publish({"namespace": namespace})
        return max(removed, local) if self._degraded else removed

    async def ainvalidate_tags(self, tags: Sequence[str]) -> int:
        removed = await self.l2.ainvalidate_tags(tags)
        self._watch_l2()
        local = self._drop_tags(tags)
        self._publish({"tags": list(tags)})
        return max(removed, local) if self._degraded else removed

    async def aacquire_lock(self, key: str, token: str, lease: float) -> bool:
        return await self.l2.aacquire_lock(key, token, lease)

    async def arelease_lock(self, key: str, token: str) -> None:
        await self.l2.arelease_lock(key, token)

    async def aclose(self) -> None:
        if self._stop():
            await self.l2.aclose()
            await self.l1.aclose()
            if self._owns_bus and self.bus is not None:
                await self.bus.aclose()

    # -- the read path's helpers ----------------------------------------------------------------------

    def _split(self, keys: Sequence[str]) -> tuple[list[Entry | None], list[int]]:
        """L1's answers for ``keys`` and the positions it could not answer."""
        l1_get = self._l1_get
        found = [l1_get(key) for key in keys]
        return found, [i for i, entry in enumerate(found) if entry is None]

    def _merge(
        self,
        found: list[Entry | None],
        missing: list[int],
        wanted: list[str],
        fetched: list[Entry | None],
        snapshot: _Snapshot,
    ) -> None:
        """Put L2's answers in place and keep the ones it had in L1."""
        self._watch_l2()
        for i, entry in zip(missing, fetched, strict=True):
            found[i] = entry
        self._fill(wanted, fetched, snapshot)

    def _snapshot(self, keys: Sequence[str]) -> _Snapshot:
        stripes = self._stripes
        return self._epoch, [stripes[hash(key) & _MASK] for key in keys]

    def _fill(self, keys: Sequence[str], entries: Sequence[Entry | None], snapshot: _Snapshot) -> None:
        """Keep what L2 returned, unless an invalidation of those keys arrived while it was being read."""
        epoch, seen = snapshot
        now, wall = self._monotonic(), self._time()
        stripes = self._stripes
        with self._lock:
            if epoch != self._epoch:
                return
            for key, entry, generation in zip(keys, entries, seen, strict=True):
                if entry is not None and stripes[hash(key) & _MASK] == generation:
                    # L2's remaining TTL is unknown: keep for an outage until the entry goes stale
                    life = entry.fresh_until - wall if entry.fresh_until != NEVER else None
                    self._hold(key, entry, None if life is None else max(life, self.l1_ttl), now)

    def _hold(self, key: str, entry: Entry, life: float | None, now: float) -> None:
        """Store in L1 (caller holds the lock): ``l1_ttl`` normally, the whole ``life`` during an outage."""
        ttl = life if self._degraded or (life is not None and life < self.l1_ttl) else self.l1_ttl
        self.l1.set(key, entry, ttl)
        keep = self._keep
        keep[key] = math.inf if life is None else now + life
        if len(keep) > self._keep_limit:
            peek = self.l1.peek
            self._keep = {k: deadline for k, deadline in keep.items() if peek(k) is not None}

    # -- after L2 changed: L1 and the broadcast ---------------------------------------------------------

    def _after_set(self, items: Sequence[tuple[str, Entry]], ttl: float | None) -> None:
        self._watch_l2()
        now = self._monotonic()
        stripes = self._stripes
        with self._lock:
            for key, entry in items:
                stripes[hash(key) & _MASK] += 1
                self._hold(key, entry, ttl, now)
        self._publish({"keys": [key for key, _ in items]})

    def _after_delete(self, keys: Sequence[str], removed: int) -> int:
        self._watch_l2()
        local = self._drop_keys(keys)
        self._publish({"keys": list(keys)})
        return max(removed, local) if self._degraded else removed

    def _after_expire(self, key: str, ttl: float | None, changed: bool) -> bool:
        self._watch_l2()
        now = self._monotonic()
        with self._lock:
            self._stripes[hash(key) & _MASK] += 1
            entry = self.l1.get(key)
            if entry is not None:
                self._hold(key, entry, ttl, now)
                changed = changed or self._degraded
        self._publish({"keys": [key]})
        return changed

    def _publish(self, payload: dict[str, Any]) -> None:
        bus = self.bus
        if bus is None:
            return
        payload["source"] = self.source
        try:
            bus.publish(INVALIDATE_TOPIC, payload)
        except EventBusClosed:
            logger.warning(
                "tiered cache: the event bus is closed; other processes keep L1 copies up to %gs", self.l1_ttl
            )

    # -- invalidating L1 (local calls and broadcasts) ----------------------------------------------------

    def _drop_keys(self, keys: Sequence[str]) -> int:
        stripes = self._stripes
        with self._lock:
            for key in keys:
                stripes[hash(key) & _MASK] += 1
                self._keep.pop(key, None)
            return self.l1.delete(keys)

    def _drop_namespace(self, namespace: str) -> int:
        with self._lock:
            self._epoch += 1
            return self.l1.clear(namespace)

    def _drop_tags(self, tags: Sequence[str]) -> int:
        with self._lock:
            self._epoch += 1
            return self.l1.invalidate_tags(tags)

    def _drop_all(self) -> int:
        with self._lock:
            self._epoch += 1
            self._keep = {}
            return self.l1.clear_all()

    def _on_invalidate(self, event: Event) -> None:
        """Apply another backend's broadcast to L1; our own are skipped, and a gap clears L1."""
        payload = event.payload
        if payload.get("source") == self.source:
            return
        subscription = self._subscription
        if subscription is not None and subscription.dropped != self._dropped_seen:
            self._dropped_seen = subscription.dropped
            dropped = self._drop_all()
            logger.warning(
                "tiered cache: invalidations were dropped (queue full); cleared %d L1 entries", dropped
            )
            self._cleared("dropped", dropped)
            return
        keys, namespace, tags = payload.get("keys"), payload.get("namespace"), payload.get("tags")
        if isinstance(keys, list):
            self._drop_keys([key for key in keys if isinstance(key, str)])
        if isinstance(namespace, str):
            self._drop_namespace(namespace)
        if isinstance(tags, list):
            self._drop_tags([tag for tag in tags if isinstance(tag, str)])

    # -- L2 availability ------------------------------------------------------------------------------

    def _watch_l2(self) -> None:
        """After an L2 call: notice an outage starting (keep L1 longer) or ending (clear L1)."""
        if getattr(self.l2, "available", True) == self._degraded:  # available now, degraded before (or not)
            self._flip()

    def _flip(self) -> None:
        with self._lock:
            available = bool(getattr(self.l2, "available", True))
            if available != self._degraded:
                return  # another thread flipped first
            self._degraded = not available
            if available:
                self._epoch += 1
                self._keep = {}
                count = self.l1.clear_all()
            else:
                count = self._extend()
                self._start_probe()
        if available:
            logger.info(
                "tiered cache: L2 %s is back; cleared %d L1 entries (invalidations sent during the outage "
                "were lost)",
                self.l2.name,
                count,
            )
            self._cleared("recovered", count)
        else:
            logger.warning(
                "tiered cache: L2 %s is unavailable; L1 serves its %d entries until their full TTL",
                self.l2.name,
                count,
            )

    def _extend(self) -> int:
        """Outage: give every live L1 entry the full TTL it was stored with (caller holds the lock)."""
        now = self._monotonic()
        kept = 0
        for key, deadline in self._keep.items():
            if deadline > now and self.l1.expire(key, None if deadline == math.inf else deadline - now):
                kept += 1
        return kept

    def _start_probe(self) -> None:
        """Start the probe thread if L2 can be probed and none runs (caller holds the lock)."""
        probe = self._probe
        if probe is None or self._prober is not None or self._closed:
            return
        if getattr(self._clock, "auto_advance", False):
            return  # a FakeClock whose sleeps return at once: a probe loop would race time forward
        self._prober = threading.Thread(
            target=self._probe_until_back, args=(probe,), name="buttress-cache-tiered-probe", daemon=True
        )
        self._prober.start()

    def _probe_until_back(self, probe: Callable[[], float]) -> None:
        """While L2 is down: probe it when its reconnect interval says so, until it is back or we close."""
        while True:
            with self._lock:
                if self._closed or not self._degraded:
                    self._prober = None
                    return
            try:
                wait = probe()
            except Exception:  # the thread must outlive any surprise; the next interval tries again
                logger.exception("tiered cache: probing L2 %s failed", self.l2.name)
                wait = self.l1_ttl
            self._watch_l2()
            if self._degraded:
                self._pause(max(wait, _MIN_PROBE_WAIT))

    def _pause(self, seconds: float) -> None:
        if isinstance(self._clock, SystemClock):
            self._wake.wait(seconds)
        else:
            self._clock.sleep(seconds)  # a FakeClock(auto_advance=False) parks the probe until advanced

    def _resubscribed(self) -> None:
        """The bus's transport subscribed again: broadcasts sent while it reconnected are lost."""
        if self._degraded or self._closed:
            return  # L2's recovery clears L1 (the probe is on its way)
        dropped = self._drop_all()
        if dropped:
            logger.info(
                "tiered cache: invalidation channel subscribed again; cleared %d L1 entries (broadcasts "
                "sent while it reconnected were lost)",
                dropped,
            )
        self._cleared("resubscribed", dropped)

    def _cleared(self, reason: str, entries: int) -> None:
        if self.bus is not None:
            publish_quietly(
                self.bus, L1_CLEARED_TOPIC, {"reason": reason, "entries": entries, "source": self.source}
            )

    def _stop(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        self._wake.set()
        if self._unhook is not None:
            self._unhook()
        if self._subscription is not None:
            self._subscription.unsubscribe()
        return True
