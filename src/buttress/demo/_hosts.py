"""The demo's upstreams by name: ``flaky.demo.test`` instead of ``127.0.0.1:40145``.

The fake upstreams listen on random loopback ports, and a host is keyed by its authority as the client
sees it, so requests to ``http://127.0.0.1:<port>`` name breakers, limiters, metric labels and log lines
after a port nobody recognises. The demo sends its requests to a name per domain under ``.test`` (a
reserved top-level domain, RFC 2606: never a real host) and :class:`NamedHosts`, the innermost transport,
delivers each to its loopback port. The policies above it see only the name; the ``Host`` header keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import httpx

__all__ = ["DEMO_ZONE", "NamedHosts", "host_name"]

DEMO_ZONE: Final = "demo.test"
"""The demo's hosts are ``<domain>.demo.test``."""


def host_name(domain: str) -> str:
    """The host name the demo's clients use for ``domain`` (``flaky`` -> ``flaky.demo.test``)."""
    return f"{domain}.{DEMO_ZONE}"


class NamedHosts(httpx.AsyncBaseTransport):
    """Sends a request for a named host to the loopback address that serves it; others go unchanged.

    ``addresses`` maps a host name to ``(ip, port)``. Wraps the transport that really connects, as a
    resolver would: everything above it (buttress's policies, httpx's ``Host`` header) keeps the name.
    """

    def __init__(self, addresses: Mapping[str, tuple[str, int]], inner: httpx.AsyncBaseTransport) -> None:
        self.addresses = dict(addresses)
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        address = self.addresses.get(request.url.host)
        if address is not None:
            request.url = request.url.copy_with(host=address[0], port=address[1])
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
