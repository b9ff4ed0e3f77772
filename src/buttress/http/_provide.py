"""What the HTTP client offers the composition root: its container registrations.

No ``from __future__ import annotations``: the factories' annotations must be real classes for the
container's wiring.
"""

from buttress.container import Container

__all__ = ["register_services"]


def register_services(container: Container) -> None:
    """Register :class:`HttpDefaults` (a singleton from ``Settings.http``) and the two default clients.

    The two clients are resolved from the defaults on every resolve (one per event loop for the async
    one, a closed one replaced), so they are registered as borrowed: the container closes the defaults,
    which close the sync client, never a client on its own.
    """
    from buttress.config import Settings  # noqa: PLC0415 - config is optional for library users
    from buttress.http._client import AsyncHttpClient, HttpClient  # noqa: PLC0415 - httpx loads on first use
    from buttress.http._defaults import HttpDefaults  # noqa: PLC0415 - as above

    def defaults(settings: Settings) -> HttpDefaults:
        return HttpDefaults(settings.http)

    container.register(HttpDefaults, defaults)
    container.register_borrowed(HttpClient, lambda: container.resolve(HttpDefaults).client())
    container.register_borrowed(AsyncHttpClient, lambda: container.resolve(HttpDefaults).async_client())
