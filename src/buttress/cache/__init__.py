"""Caching: one API over memory, Redis and tiered backends, sync and async, stampede-safe.

::

    from buttress.cache import Cache, cached

    cache = Cache()                                   # in-process memory; get_cache() reads settings

    @cache.cached(ttl=300, key="artist:{artist_id}", tags="artists", stale_ttl=60)
    def get_artist(artist_id: str) -> dict[str, str]: ...

    get_artist.invalidate("42")
    cache.invalidate_tags("artists")

A miss runs the function once however many threads or tasks miss together (and, on Redis, however many
processes: a lock with a lease); within ``stale_ttl`` after expiry the old value is served while one
background refresh runs. When Redis is unreachable nothing raises: reads and writes go to memory, a
metric counts them, health warns, and the backend reconnects by itself.
"""

from buttress.cache._backend import NEVER, BackendInfo, CacheBackend, Entry
from buttress.cache._cache import DEFAULT, Cache, Policy
from buttress.cache._cached import CachedFunction
from buttress.cache._defaults import BackendChoice, build_cache, cached, get_cache, reset_cache, set_cache
from buttress.cache._memory import MemoryBackend
from buttress.cache._provide import health_checks, register_services
from buttress.cache._redis import RedisBackend
from buttress.cache._report import CacheStatsReport, NamespaceReport, Recommendation, cache_stats
from buttress.cache._serializers import (
    CacheIntegrityError,
    JsonSerializer,
    MsgpackSerializer,
    Serializer,
    SignedPickleSerializer,
    make_serializer,
)
from buttress.cache._stats import CacheStatsRecorder, NamespaceStats
from buttress.cache._tiered import TieredBackend
from buttress.cache._warm import (
    WarmCancelled,
    WarmProgress,
    WarmResult,
    run_all_warmers,
    start_cache_warming,
    start_warming,
    warmer_caches,
    warmers_of,
)

__all__ = [
    "DEFAULT",
    "NEVER",
    "BackendChoice",
    "BackendInfo",
    "Cache",
    "CacheBackend",
    "CacheIntegrityError",
    "CacheStatsRecorder",
    "CacheStatsReport",
    "CachedFunction",
    "Entry",
    "JsonSerializer",
    "MemoryBackend",
    "MsgpackSerializer",
    "NamespaceReport",
    "NamespaceStats",
    "Policy",
    "Recommendation",
    "RedisBackend",
    "Serializer",
    "SignedPickleSerializer",
    "TieredBackend",
    "WarmCancelled",
    "WarmProgress",
    "WarmResult",
    "build_cache",
    "cache_stats",
    "cached",
    "get_cache",
    "health_checks",
    "make_serializer",
    "register_services",
    "reset_cache",
    "run_all_warmers",
    "set_cache",
    "start_cache_warming",
    "start_warming",
    "warmer_caches",
    "warmers_of",
]
