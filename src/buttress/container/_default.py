"""The process-wide default container: created on first use with buttress's services, reset as one."""

import threading

from buttress.container._core import CHANGES, Container

_DEFAULT: list[Container] = []  # zero or one: the process-wide default container
_DEFAULT_LOCK = threading.Lock()


def get_container() -> Container:
    """The process-wide default container, created on first use (thread-safe) with buttress's services.

    :class:`buttress.composition.OnDemand` registers them one capability at a time, the first time one
    of its types is asked for (nothing is built before it is resolved): ``Settings`` (borrowed from
    ``get_settings()``, never closed here), ``Clock``, and the container's own singletons behind the
    short accessors: ``MetricsRegistry`` (``get_metrics()``), ``ErrorAggregator``, ``Profiler``,
    ``EventBus`` (``get_event_bus()``), ``Cache`` (``get_cache()``), ``ResilienceDefaults``
    (``get_resilience_store()``, ``get_breakers()``, ``get_pipeline()``), ``HttpDefaults`` with
    ``HttpClient``/``AsyncHttpClient`` (``get_http_client()``...), ``Database`` (with the ``[db]``
    extra) and ``HealthRegistry``. The container owns what it builds: :meth:`Container.close` (and
    :func:`reset_container`) closes it in reverse creation order. ``set_*`` functions adopt a
    replacement (:meth:`Container.replace`); ``reset_*`` close one (:meth:`Container.reset`).
    """
    try:
        return _DEFAULT[0]  # the hot path: every get_metrics(), get_profiler() ... comes through here
    except IndexError:
        return _create()


def _create() -> Container:
    # Built outside the lock (registering imports modules, and module code must never wait on this
    # lock); when threads race, the losers' containers are dropped with nothing built in them.
    container = Container()
    _register_defaults(container)
    with _DEFAULT_LOCK:
        if not _DEFAULT:
            _DEFAULT.append(container)
        return _DEFAULT[0]


def set_container(container: Container) -> None:
    """Replace the default container (tests, or an application that builds its own; no defaults added:
    call :func:`buttress.composition.register_defaults` on it for buttress's services)."""
    _DEFAULT[:] = [container]
    CHANGES.bump()


def reset_container() -> None:
    """Close the default container (everything it built, in reverse order) and forget it.

    The one reset for tests: the next :func:`get_container` (and so the next ``get_cache()``,
    ``get_event_bus()``, ``get_metrics()``...) builds everything anew from the settings of that time.
    Settings themselves are reset by ``reset_settings()``.
    """
    with _DEFAULT_LOCK:
        containers, _DEFAULT[:] = list(_DEFAULT), []
    CHANGES.bump()
    for container in containers:
        container.close()


def _register_defaults(container: Container) -> None:
    """Let the composition root register a capability's services when one of its types is first asked for."""
    from buttress.composition import OnDemand  # noqa: PLC0415 - the composition root sits above every capability

    container.register_on_demand(OnDemand())
