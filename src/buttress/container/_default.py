"""The process-wide default container, and the buttress services it knows from the start.

No ``from __future__ import annotations`` here on purpose: the health registry factory is defined after
its types are imported (lazily), so its annotations are the classes themselves and wiring reads them
without having to evaluate strings.
"""

import threading

from buttress.container._core import Container

_DEFAULT: list[Container] = []  # zero or one: the process-wide default container
_DEFAULT_LOCK = threading.Lock()


def get_container() -> Container:
    """The process-wide default container, created on first use (thread-safe) with buttress's defaults.

    Registered lazily (nothing is built before it is resolved):

    - ``buttress.config.Settings``: ``get_settings()``, called on every resolve (borrowed);
    - ``buttress.clock.Clock``: ``SYSTEM_CLOCK`` (an instance);
    - ``buttress.events.EventBus``: ``get_event_bus()``, called on every resolve (borrowed);
    - ``buttress.observe.metrics.MetricsRegistry``: ``get_metrics()``, called on every resolve (borrowed);
    - ``buttress.http.HttpClient``: ``get_http_client()``, and ``AsyncHttpClient``:
      ``get_async_http_client()`` (one per event loop), called on every resolve (borrowed);
    - ``buttress.observe.health.HealthRegistry``: a SINGLETON built by ``default_health_registry(settings)``
      from the container's ``Settings`` (so ``container.override(Settings, ...)`` reaches it).

    Who closes what: the borrowed ones and the clock belong to their modules (``reset_event_bus()``
    closes the process-wide bus), so :meth:`Container.close` and scopes never close them, and resolving
    always returns what the getter returns now (it follows ``set_event_bus()``, ``reset_settings()``,
    ``reset_metrics()``). The health registry is the container's own: :meth:`Container.close` closes it
    (releasing its checks' connection pools), once. Register a type again to replace any default.
    """
    if not _DEFAULT:
        # Built outside the lock (registering imports modules, and module code must never wait on this
        # lock); when threads race, the losers' containers are dropped with nothing built in them.
        container = Container()
        _register_defaults(container)
        with _DEFAULT_LOCK:
            if not _DEFAULT:
                _DEFAULT.append(container)
    return _DEFAULT[0]


def set_container(container: Container) -> None:
    """Replace the default container (tests, or an application that builds its own; no defaults added)."""
    _DEFAULT[:] = [container]


def reset_container() -> None:
    """Forget the default container (it is not closed); the next get_container() creates a new one."""
    _DEFAULT.clear()


def _register_defaults(container: Container) -> None:
    """Register buttress's own services; imported here, not at import time, so the package stays light."""
    from buttress.clock import SYSTEM_CLOCK, Clock  # noqa: PLC0415 - lazy: see the function's docstring
    from buttress.config import Settings, get_settings  # noqa: PLC0415
    from buttress.events import EventBus, get_event_bus  # noqa: PLC0415
    from buttress.http import AsyncHttpClient, HttpClient, get_async_http_client, get_http_client  # noqa: PLC0415
    from buttress.observe.health import HealthRegistry, default_health_registry  # noqa: PLC0415
    from buttress.observe.metrics import MetricsRegistry, get_metrics  # noqa: PLC0415

    def health_registry(settings: Settings) -> HealthRegistry:
        return default_health_registry(settings)

    container._register_borrowed(Settings, get_settings)
    container.register_instance(Clock, SYSTEM_CLOCK)  # type: ignore[type-abstract]
    container._register_borrowed(EventBus, get_event_bus)
    container._register_borrowed(MetricsRegistry, get_metrics)
    container._register_borrowed(HttpClient, get_http_client)
    container._register_borrowed(AsyncHttpClient, get_async_http_client)
    container.register(HealthRegistry, health_registry)
