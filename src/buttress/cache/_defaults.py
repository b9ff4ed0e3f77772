"""The process-wide cache built from settings, the module-level ``@cached`` and the health check.

Backend selection (``BUTTRESS_CACHE__BACKEND``): ``auto`` picks tiered when ``BUTTRESS_REDIS_URL`` is set and
Redis answers a PING at startup, memory otherwise; ``memory``, ``redis`` and ``tiered`` are taken as asked
(``redis`` and ``tiered`` start degraded, serving from memory, if Redis is down, and switch over when it
answers). The choice and its reason are logged once and shown by the ``cache`` health check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from buttress._extras import require
from buttress._redis import mask_url, ping
from buttress.cache._cache import DEFAULT, Cache, _Default
from buttress.cache._cached import CachedFunction, make_cached
from buttress.cache._memory import MemoryBackend
from buttress.cache._serializers import make_serializer
from buttress.container import get_container
from buttress.health_types import CheckResult

if TYPE_CHECKING:
    from buttress.cache._backend import CacheBackend
    from buttress.config import Settings
    from buttress.events import EventBus

__all__ = ["BackendChoice", "build_cache", "cache_health", "cached", "get_cache", "reset_cache", "set_cache"]

_log = logging.getLogger("buttress.cache")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class BackendChoice:
    """Which backend the settings asked for, which one runs, and why."""

    requested: str
    chosen: str
    reason: str
    redis_unreachable: bool = False
    """True when ``auto`` settled for memory because the configured Redis did not answer (health warns)."""


def choose_backend(settings: Settings) -> BackendChoice:
    """The backend ``settings.cache.backend`` resolves to, probing Redis for ``auto``."""
    requested = settings.cache.backend
    url = settings.redis_url
    if requested != "auto":
        return BackendChoice(requested, requested, f"BUTTRESS_CACHE__BACKEND={requested}")
    if url is None:
        return BackendChoice("auto", "memory", "BUTTRESS_REDIS_URL is not set")
    if ping(url, max(settings.cache.socket_timeout, 1.0)):
        return BackendChoice("auto", "tiered", f"Redis at {mask_url(url)} answered at startup")
    return BackendChoice(
        "auto",
        "memory",
        f"Redis at {mask_url(url)} did not answer at startup; set BUTTRESS_CACHE__BACKEND=tiered "
        "to wait for it instead",
        redis_unreachable=True,
    )


def build_cache(settings: Settings, *, event_bus: Callable[[], EventBus] | None = None) -> Cache:
    """A :class:`Cache` as ``settings.cache`` describes it; the choice is logged and kept on the cache.

    ``event_bus`` returns the bus for the cache's events (called only for a Redis-backed cache; default:
    :func:`~buttress.events.get_event_bus`). A bus built here only for tiered invalidations is owned by the
    tiered backend, so closing the cache closes it.
    """
    config = settings.cache
    choice = choose_backend(settings)
    shared = choice.chosen in {"redis", "tiered"} and settings.redis_url is not None
    memory = MemoryBackend(
        max_entries=config.max_entries,
        max_bytes=config.max_bytes,
        # alone, it refuses what the configured serializer would change, as Redis will (as L1 or
        # fallback it need not: the Redis backend's serializer checks every value first)
        serializer=None if shared else config.serializer,
    )
    backend: CacheBackend = memory
    bus = None
    if shared and settings.redis_url is not None:
        require("redis", "redis", f"the {choice.chosen} cache backend")
        from buttress.cache._redis import RedisBackend  # noqa: PLC0415 - only with Redis
        from buttress.events import get_event_bus  # noqa: PLC0415 - only with Redis: events load redis

        key = config.signing_key or settings.security.secret_key
        serializer = make_serializer(config.serializer, None if key is None else key.get_secret_value())
        bus = (event_bus or get_event_bus)()
        redis_backend = RedisBackend(
            settings.redis_url,
            prefix=config.prefix,
            serializer=serializer,
            socket_timeout=config.socket_timeout,
            fallback=memory if choice.chosen == "redis" else None,
            events=bus,
        )
        backend = redis_backend
        if choice.chosen == "tiered":
            from buttress.cache._tiered import TieredBackend  # noqa: PLC0415 - only with Redis

            invalidations = _invalidation_bus(settings, bus)
            backend = TieredBackend(
                redis_backend,
                l1=memory,
                l1_ttl=config.l1_ttl,
                bus=invalidations,
                owns_bus=invalidations is not bus,
            )
    cache = Cache(
        backend,
        ttl=config.default_ttl,
        lock_lease=config.lock_lease,
        lock_wait=config.lock_wait,
        events=bus,
    )
    cache._shared.choice = choice
    _log.info("cache backend: %s (%s)", choice.chosen, choice.reason)
    return cache


def _invalidation_bus(settings: Settings, bus: EventBus) -> EventBus:
    """The bus that carries L1 invalidations: ``bus`` if it crosses processes, else a new Redis one."""
    from buttress.events import RedisTransport, create_event_bus  # noqa: PLC0415 - only with Redis

    if isinstance(bus.transport, RedisTransport):
        return bus
    return create_event_bus(
        "redis", redis_url=settings.redis_url, prefix=f"{settings.cache.prefix}:invalidate"
    )


def get_cache() -> Cache:
    """The process-wide cache: the default container's :class:`Cache`, built from settings on first use."""
    return get_container().resolve(Cache)


def set_cache(cache: Cache | None) -> Cache | None:
    """Make ``cache`` the process-wide one (``None``: back to the one built from settings).

    The default container adopts ``cache`` (``reset_container()`` closes it); the previous one, if any,
    is returned and is the caller's again.
    """
    return get_container().replace(Cache, cache)


def reset_cache() -> None:
    """Close and forget the process-wide cache; the next :func:`get_cache` builds it from settings again."""
    get_container().reset(Cache)


def cached(
    ttl: float | _Default | None = DEFAULT,
    *,
    key: str | Callable[..., str] | None = None,
    namespace: str | None = None,
    tags: str | Iterable[str] = (),
    unless: Callable[[Any], bool] | None = None,
    stale_ttl: float = 0.0,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """``@cached`` over the process-wide cache (:func:`get_cache`, looked up on each call)."""
    return make_cached(
        get_cache, ttl=ttl, key=key, namespace=namespace, tags=tags, unless=unless, stale_ttl=stale_ttl
    )


def cache_health(cache: Cache | None = None) -> CheckResult:
    """The ``cache`` health check of ``cache`` (default: the process-wide one): the backend, why, and
    whether it serves normally; warns while ``auto`` settled for memory because Redis did not answer."""
    cache = get_cache() if cache is None else cache
    choice = cache.backend_choice
    result = cache.check()
    if choice is None:
        return result
    detail = f"{choice.chosen} backend ({choice.reason}); {result.output}"
    status = result.status
    if choice.redis_unreachable:
        status = "warn"
    return CheckResult(
        status, detail, observed_value=result.observed_value, observed_unit=result.observed_unit
    )
