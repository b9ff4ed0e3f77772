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
from typing import Any, Final, ParamSpec, Protocol, TypeVar, cast

from buttress.cache._cache import DEFAULT, Cache, Policy, _Default, check_namespace, make_policy
from buttress.cache._keys import KeyBuilder, build_key_builder, is_method
from buttress.cache._memory import MemoryBackend
from buttress.cache._stats import SAMPLE_MASK
from buttress.container import CHANGES, Changes
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
    module-level ``cached``) again after any container change (``set_cache``, ``reset_cache``,
    ``reset_container``, an override), so a new process-wide cache takes effect at the next call.
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

        def bind() -> _Bound:
            cache = cache_of()
            target = cache.namespaced(namespace) if namespace is not None else cache
            return target, target.policy(ttl, tags, stale_ttl, unless), target.namespace + ":" + key_prefix

        changes: Changes = CHANGES
        if fixed:  # resolved once, here; the call never looks again
            bound = bind()
            changes = _UNCHANGING

            def bind() -> _Bound:
                return bound

        make = _async_call if is_async else _sync_call
        wrapper = make(bind, changes, build, fn)

        def relative(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            # invalidate() takes a call's arguments without self; the builder expects a slot for it
            return key_prefix + build((None, *args) if method else args, kwargs)

        def invalidate(*args: Any, **kwargs: Any) -> bool:
            return bind()[0].delete(relative(args, kwargs)) > 0

        async def ainvalidate(*args: Any, **kwargs: Any) -> bool:
            return await bind()[0].adelete(relative(args, kwargs)) > 0

        def cache_key(*args: Any, **kwargs: Any) -> str:
            return relative(args, kwargs)

        functools.update_wrapper(wrapper, fn)
        decorated: Any = wrapper
        decorated.invalidate = invalidate
        decorated.ainvalidate = ainvalidate
        decorated.cache_key = cache_key
        return cast("CachedFunction[P, R]", decorated)

    return decorate


_Bound = tuple[Cache, Policy, str]
"""What a decorated function resolved to: the cache of its namespace, its policy and its key prefix."""

_UNCHANGING: Final = Changes()
"""The change count of a cache fixed at decoration (``Cache.cached``): never bumped."""


def _parts(bind: Callable[[], _Bound], changes: Changes) -> tuple[Any, ...]:
    """Everything a call touches, resolved now; the change count read first comes last."""
    seen = changes.value  # read before resolving: a change after this is seen by the next call
    cache, policy, prefix = bind()
    counters = cache.stats_recorder.namespace(cache.namespace)
    backend = cache.backend
    local_get = backend.get if isinstance(backend, MemoryBackend) else None  # never blocks: no await
    return (
        prefix,
        policy,
        backend.get,
        backend.aget,
        local_get,
        counters.lookups.add,
        cache.hit,
        cache.wall,
        cache.fetch,
        cache.afetch,
        cache.resolve,
        cache.aresolve,
        seen,
    )


# The two calls below are the hot path of every cached function. Everything they touch is a closure
# variable; a hit is the change check, the key, one backend read, a freshness check and two counters.
# The module-level @cached resolves get_cache() again only when a container changed (buttress.container
# CHANGES): no lookup per call. A rebind stores the new parts one by one, the count last, so a call
# racing a cache swap may still use the old cache for that call, as it could have just before the swap.


def _sync_call(
    bind: Callable[[], _Bound], changes: Changes, build: KeyBuilder, fn: Callable[..., Any]
) -> Callable[..., Any]:
    (prefix, policy, backend_get, _, _, lookups, hits, wall, fetch, _, resolve, _, seen) = _parts(
        bind, changes
    )

    def rebind() -> None:
        nonlocal prefix, policy, backend_get, lookups, hits, wall, fetch, resolve, seen
        (prefix, policy, backend_get, _, _, lookups, hits, wall, fetch, _, resolve, _, seen) = _parts(
            bind, changes
        )

    def cached_call(*args: Any, **kwargs: Any) -> Any:
        if changes.value != seen:
            rebind()
        full = prefix + build(args, kwargs)
        entry = backend_get(full) if lookups() & SAMPLE_MASK else fetch(full)
        if entry is not None and entry.fresh_until > wall():
            hits()
            return entry.value
        return resolve(full, entry, fn, args, kwargs, policy)

    return cached_call


def _async_call(
    bind: Callable[[], _Bound], changes: Changes, build: KeyBuilder, fn: Callable[..., Any]
) -> Callable[..., Awaitable[Any]]:
    (prefix, policy, _, aget, local_get, lookups, hits, wall, _, afetch, _, aresolve, seen) = _parts(
        bind, changes
    )

    def rebind() -> None:
        nonlocal prefix, policy, aget, local_get, lookups, hits, wall, afetch, aresolve, seen
        (prefix, policy, _, aget, local_get, lookups, hits, wall, _, afetch, _, aresolve, seen) = _parts(
            bind, changes
        )

    async def cached_call(*args: Any, **kwargs: Any) -> Any:
        if changes.value != seen:
            rebind()
        full = prefix + build(args, kwargs)
        if lookups() & SAMPLE_MASK:
            entry = local_get(full) if local_get is not None else await aget(full)
        else:
            entry = await afetch(full)
        if entry is not None and entry.fresh_until > wall():
            hits()
            return entry.value
        return await aresolve(full, entry, fn, args, kwargs, policy)

    return cached_call
