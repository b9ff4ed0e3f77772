"""The process-wide cache built from settings, the module-level ``@cached`` and the health check.

Backend selection (``BUTTRESS_CACHE__BACKEND``): ``auto`` picks tiered when ``BUTTRESS_REDIS_URL`` is set and
Redis answers a PING at startup, memory otherwise; ``memory``, ``redis`` and ``tiered`` are taken as asked
(``redis`` and ``tiered`` start degraded, serving from memory, if Redis is down, and switch over when it
answers). The choice and its reason are logged once and shown by the ``cache`` health check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from buttress._redaction import mask_url_password
from buttress._redis import ping
from buttress.cache._cache import DEFAULT, Cache, _Default
from buttress.cache._cached import CachedFunction, make_cached
from buttress.cache._memory import MemoryBackend
from buttress.cache._serializers import make_serializer

if TYPE_CHECKING:
    from buttress.cache._backend import CacheBackend
    from buttress.config import Settings
    from buttress.events import EventBus
    from buttress.observe.health import CheckResult

__all__ = ["BackendChoice", "build_cache", "cached", "get_cache", "reset_cache", "set_cache"]

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
        return BackendChoice("auto", "tiered", f"Redis at {mask_url_password(url)} answered at startup")
    return BackendChoice(
        "auto",
        "memory",
        f"Redis at {mask_url_password(url)} did not answer at startup; set BUTTRESS_CACHE__BACKEND=tiered "
        "to wait for it instead",
        redis_unreachable=True,
    )


def build_cache(settings: Settings) -> Cache:
    """A :class:`Cache` as ``settings.cache`` describes it; the choice is logged and kept in extensions."""
    config = settings.cache
    choice = choose_backend(settings)
    memory = MemoryBackend(max_entries=config.max_entries, max_bytes=config.max_bytes)
    backend: CacheBackend = memory
    bus = owned_bus = None
    if choice.chosen in {"redis", "tiered"} and settings.redis_url is not None:
        from buttress.cache._redis import RedisBackend  # noqa: PLC0415 - only with Redis
        from buttress.events import get_event_bus  # noqa: PLC0415

        key = config.signing_key or settings.security.secret_key
        serializer = make_serializer(config.serializer, None if key is None else key.get_secret_value())
        bus = get_event_bus()
        redis_backend = RedisBackend(
            settings.redis_url,
            prefix=config.key_prefix,
            serializer=serializer,
            socket_timeout=config.socket_timeout,
            fallback=memory if choice.chosen == "redis" else None,
            events=bus,
        )
        backend = redis_backend
        if choice.chosen == "tiered":
            from buttress.cache._tiered import TieredBackend  # noqa: PLC0415

            invalidations = _invalidation_bus(settings)
            if invalidations is not bus:
                owned_bus = invalidations
            backend = TieredBackend(redis_backend, l1=memory, l1_ttl=config.l1_ttl, bus=invalidations)
    cache = Cache(
        backend,
        ttl=config.default_ttl,
        lock_lease=config.lock_lease,
        lock_wait=config.lock_wait,
        events=bus,
    )
    cache.extensions["choice"] = choice
    if owned_bus is not None:
        cache.extensions["invalidation_bus"] = owned_bus  # closed by reset_cache()
    _log.info("cache backend: %s (%s)", choice.chosen, choice.reason)
    return cache


def _invalidation_bus(settings: Settings) -> EventBus:
    """The bus that carries L1 invalidations: the default bus if it crosses processes, else a Redis one."""
    from buttress.events import RedisTransport, create_event_bus, get_event_bus  # noqa: PLC0415

    bus = get_event_bus()
    if isinstance(bus.transport, RedisTransport):
        return bus
    return create_event_bus(
        "redis", redis_url=settings.redis_url, prefix=f"{settings.cache.key_prefix}:invalidate"
    )


_lock = threading.Lock()
_cache: Cache | None = None


def get_cache() -> Cache:
    """The process-wide cache, built from :func:`~buttress.config.get_settings` on first use."""
    cache = _cache
    if cache is None:
        cache = _create()
    return cache


def _create() -> Cache:
    global _cache  # noqa: PLW0603 - the process-wide default
    from buttress.config import get_settings  # noqa: PLC0415

    with _lock:
        if _cache is None:
            _cache = build_cache(get_settings())
        return _cache


def set_cache(cache: Cache | None) -> Cache | None:
    """Replace the process-wide cache (tests, or a cache built by hand); returns the previous one."""
    global _cache
    with _lock:
        previous, _cache = _cache, cache
    return previous


def reset_cache() -> None:
    """Close and forget the process-wide cache; the next :func:`get_cache` builds it from settings again."""
    previous = set_cache(None)
    if previous is not None:
        previous.close()
        owned_bus = previous.extensions.get("invalidation_bus")
        if owned_bus is not None:
            owned_bus.close()


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


def cache_health() -> CheckResult | None:
    """The ``cache`` health check: the backend chosen, why, and whether it serves normally."""
    from buttress.observe.health import CheckResult  # noqa: PLC0415

    cache = get_cache()
    choice: BackendChoice | None = cache.extensions.get("choice")
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
