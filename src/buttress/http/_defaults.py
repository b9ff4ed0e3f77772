"""The process-wide HTTP objects: the policies from settings, one sync client, one async client per loop.

Every default client shares one :class:`HttpPolicies`, so the sync and the async client agree about a
host: its breaker, rate limit, bulkhead and retry budget are the same objects (and, with
``BUTTRESS_RESILIENCE__STORE=redis``, the same Redis keys as in every other process).
"""

from __future__ import annotations

import asyncio
import threading
import weakref

from buttress.http._client import AsyncHttpClient, HttpClient
from buttress.http._policies import HttpPolicies

__all__ = ["get_async_http_client", "get_http_client", "get_http_policies", "reset_http"]

_lock = threading.Lock()
_policies: list[HttpPolicies] = []
_clients: list[HttpClient] = []
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncHttpClient] = (
    weakref.WeakKeyDictionary()
)


def get_http_policies() -> HttpPolicies:
    """The per-host policies from ``Settings.http``, built once per process."""
    with _lock:
        if not _policies:
            _policies.append(HttpPolicies())
        return _policies[0]


def get_http_client() -> HttpClient:
    """The process-wide pooled sync client (also in the container as ``HttpClient``)."""
    policies = get_http_policies()
    with _lock:
        if not _clients or _clients[0].is_closed:
            _clients[:] = [HttpClient(policies=policies)]
        return _clients[0]


def get_async_http_client() -> AsyncHttpClient:
    """The async client of the running event loop (its pooled connections belong to that loop)."""
    loop = asyncio.get_running_loop()
    policies = get_http_policies()
    with _lock:
        client = _async_clients.get(loop)
        if client is None or client.is_closed:
            client = _async_clients[loop] = AsyncHttpClient(policies=policies)
        return client


def reset_http() -> None:
    """Close the sync client and forget every default (tests; after changing settings).

    Async clients are dropped, not closed: closing needs their own event loop. Close them with
    ``await get_async_http_client().aclose()`` on that loop first when it matters.
    """
    with _lock:
        clients, _clients[:] = list(_clients), []
        _async_clients.clear()
        _policies.clear()
    for client in clients:
        client.close()
