"""``@cached``: memoise a sync or async function (or method) in a :class:`Cache`, types kept.

The wrapper is chosen at decoration time (``async def`` gets an async wrapper), the key builder and the
policy are checked then too, so a bad template fails at import, not at the first call. A hit is the key,
one backend read and a freshness check; everything else (single-flight, the lock, stale-while-revalidate,
``unless``) happens in :meth:`Cache.resolve` on a miss.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from buttress.cache._cache import DEFAULT, Cache, Policy, _Default, check_namespace, make_policy
from buttress.cache._keys import KeyBuilder, build_key_builder, is_method
from buttress.cache._memory import MemoryBackend
from buttress.cache._stats import SAMPLE_MASK
from buttress.errors import ValidationError

__all__ = ["CachedFunction", "make_cached"]

P = ParamSpec("P")
R = TypeVar("R")


class CachedFunction(Protocol[P, R]):
    """A decorated function: call it as before; ``invalidate`` drops the entry of given arguments."""

    __wrapped__: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete the entry the same arguments would use (for methods, leave out ``self``)."""
        ...

    async def ainvalidate(self, *args: Any, **kwargs: Any) -> bool: ...

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key the given arguments use, as ``cache.get``/``cache.delete`` take it (no namespace).

        With ``namespace=``, it is a key of ``cache.namespaced(namespace)``.
        """
        ...


def make_cached(
    cache_of: Callable[[], Cache],
    *,
    ttl: float | _Default | None = DEFAULT,
    key: str | Callable[..., str] | None = None,
    namespace: str | None = None,
    tags: str | Iterable[str] = (),
    unless: Callable[[Any], bool] | None = None,
    stale_ttl: float = 0.0,
    fixed: bool = False,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """The ``@cached`` decorator over the cache ``cache_of()`` returns.

    With ``fixed=True`` (``Cache.cached``) the cache is resolved once, at decoration; otherwise (the
    module-level ``cached``) on every call, so :func:`~buttress.cache.set_cache` takes effect at once.
    """
    if namespace is not None:
        check_namespace(namespace)
    make_policy(None, ttl, tags, stale_ttl, unless)  # fail at decoration time, not at the first call

    def decorate(fn: Callable[P, R]) -> CachedFunction[P, R]:
        if not callable(fn):
            raise ValidationError(f"@cached decorates functions, got {fn!r}", field="fn")
        method = is_method(fn)
        key_prefix, build = build_key_builder(fn, key, skip_self=method)
        is_async = inspect.iscoroutinefunction(fn)
        binding: list[_Binding | None] = [None]

        def bind() -> _Binding:
            cache = cache_of()
            current = binding[0]
            if current is None or current.cache is not cache:
                target = cache.namespaced(namespace) if namespace is not None else cache
                policy = target.policy(ttl, tags, stale_ttl, unless)
                prefix = target.namespace + ":" + key_prefix
                make = _async_call if is_async else _sync_call
                call = make(target, policy, prefix, build, fn)
                current = binding[0] = _Binding(cache, target, call)
            return current

        wrapper: Callable[..., Any]
        if fixed:
            wrapper = bind().call
        elif is_async:

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                return await bind().call(*args, **kwargs)

        else:

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return bind().call(*args, **kwargs)

        def relative(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            # invalidate() takes a call's arguments without self; the builder expects a slot for it
            return key_prefix + build((None, *args) if method else args, kwargs)

        def invalidate(*args: Any, **kwargs: Any) -> bool:
            return bind().target.delete(relative(args, kwargs)) > 0

        async def ainvalidate(*args: Any, **kwargs: Any) -> bool:
            return await bind().target.adelete(relative(args, kwargs)) > 0

        def cache_key(*args: Any, **kwargs: Any) -> str:
            return relative(args, kwargs)

        functools.update_wrapper(wrapper, fn)
        decorated: Any = wrapper
        decorated.invalidate = invalidate
        decorated.ainvalidate = ainvalidate
        decorated.cache_key = cache_key
        return cast("CachedFunction[P, R]", decorated)

    return decorate


class _Binding:
    """The cache a decorated function resolved to, and the call built for it."""

    __slots__ = ("cache", "call", "target")

    def __init__(self, cache: Cache, target: Cache, call: Callable[..., Any]) -> None:
        self.cache = cache
        self.target = target
        self.call = call


# The two calls below are the hot path of every cached function: everything they touch is a closure
# variable bound once, and a hit is the key, one backend read, a freshness check and two counters.


def _sync_call(
    cache: Cache, policy: Policy, prefix: str, build: KeyBuilder, fn: Callable[..., Any]
) -> Callable[..., Any]:
    backend_get = cache.backend.get
    lookups, hits, wall = cache.stats_recorder.namespace(cache.namespace).lookups.add, cache.hit, cache.wall
    fetch, resolve = cache.fetch, cache.resolve

    def cached_call(*args: Any, **kwargs: Any) -> Any:
        full = prefix + build(args, kwargs)
        entry = backend_get(full) if lookups() & SAMPLE_MASK else fetch(full)
        if entry is not None and entry.fresh_until > wall():
            hits()
            return entry.value
        return resolve(full, entry, fn, args, kwargs, policy)

    return cached_call


def _async_call(
    cache: Cache, policy: Policy, prefix: str, build: KeyBuilder, fn: Callable[..., Any]
) -> Callable[..., Awaitable[Any]]:
    backend = cache.backend
    lookups, hits, wall = cache.stats_recorder.namespace(cache.namespace).lookups.add, cache.hit, cache.wall
    afetch, aresolve = cache.afetch, cache.aresolve
    if isinstance(backend, MemoryBackend):  # its reads never block: skip the coroutine of aget
        local_get = backend.get

        async def cached_local(*args: Any, **kwargs: Any) -> Any:
            full = prefix + build(args, kwargs)
            entry = local_get(full) if lookups() & SAMPLE_MASK else await afetch(full)
            if entry is not None and entry.fresh_until > wall():
                hits()
                return entry.value
            return await aresolve(full, entry, fn, args, kwargs, policy)

        return cached_local
    backend_aget = backend.aget

    async def cached_call(*args: Any, **kwargs: Any) -> Any:
        full = prefix + build(args, kwargs)
        entry = await backend_aget(full) if lookups() & SAMPLE_MASK else await afetch(full)
        if entry is not None and entry.fresh_until > wall():
            hits()
            return entry.value
        return await aresolve(full, entry, fn, args, kwargs, policy)

    return cached_call
