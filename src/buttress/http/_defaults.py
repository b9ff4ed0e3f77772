"""The process-wide HTTP objects: the policies from settings, one sync client, one async client per loop.

Every default client shares one :class:`HttpPolicies`, so the sync and the async client agree about a
host: its breaker, rate limit, bulkhead and retry budget are the same objects (and, with
``BUTTRESS_RESILIENCE__STORE=redis``, the same Redis keys as in every other process). They live in one
:class:`HttpDefaults` owned by the default container; the ``get_*`` functions are thin wrappers over it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import TYPE_CHECKING

from buttress.container import get_container
from buttress.http._client import AsyncHttpClient, HttpClient
from buttress.http._policies import HttpPolicies

if TYPE_CHECKING:
    from buttress.config import HttpSettings

__all__ = ["HttpDefaults", "get_async_http_client", "get_http_client", "get_http_policies", "reset_http"]


class HttpDefaults:
    """The policies, the sync client and the async client of each event loop, built on first use.

    A closed default client is replaced by a new one on the next request for it. :meth:`close` closes
    the sync client; async clients are dropped, not closed: closing needs their own event loop (close
    them with ``await get_async_http_client().aclose()`` on that loop first when it matters).
    """

    def __init__(self, settings: HttpSettings | None = None) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._policies: HttpPolicies | None = None
        self._client: HttpClient | None = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncHttpClient] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def policies(self) -> HttpPolicies:
        """The per-host policies from ``Settings.http``, shared by every default client."""
        with self._lock:
            if self._policies is None:
                self._policies = HttpPolicies(self._settings)
            return self._policies

    def client(self) -> HttpClient:
        """The pooled sync client."""
        policies = self.policies
        with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = HttpClient(policies=policies)
            return self._client

    def async_client(self) -> AsyncHttpClient:
        """The async client of the running event loop (its pooled connections belong to that loop)."""
        loop = asyncio.get_running_loop()
        policies = self.policies
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None or client.is_closed:
                client = self._async_clients[loop] = AsyncHttpClient(policies=policies)
            return client

    def close(self) -> None:
        """Close the sync client and forget every default."""
        with self._lock:
            client, self._client, self._policies = self._client, None, None
            self._async_clients.clear()
        if client is not None:
            client.close()


def get_http_policies() -> HttpPolicies:
    """The per-host policies from ``Settings.http``, built once per process."""
    return get_container().resolve(HttpDefaults).policies


def get_http_client() -> HttpClient:
    """The process-wide pooled sync client (also in the container as ``HttpClient``)."""
    return get_container().resolve(HttpClient)


def get_async_http_client() -> AsyncHttpClient:
    """The async client of the running event loop (also in the container as ``AsyncHttpClient``)."""
    return get_container().resolve(AsyncHttpClient)


def reset_http() -> None:
    """Close the sync client and forget every default (tests; after changing settings).

    Async clients are dropped, not closed: see :class:`HttpDefaults`.
    """
    get_container().reset(HttpDefaults)
