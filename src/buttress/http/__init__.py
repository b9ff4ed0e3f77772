"""An HTTP client on httpx with per-host policies: retry, circuit breaker, rate limit, bulkhead, deadline.

``HttpClient``/``AsyncHttpClient`` send requests through the policies and raise buttress errors with the
host, method, URL and attempts; ``ResilientTransport``/``AsyncResilientTransport`` give the same policies
to any httpx client (or SDK built on one). Policies come from ``Settings.http``: a ``default`` and named
ones claiming hosts by pattern.
"""

from buttress.http._client import AsyncHttpClient, HttpClient
from buttress.http._core import attempts_of
from buttress.http._defaults import get_async_http_client, get_http_client, get_http_policies, reset_http
from buttress.http._download import Download
from buttress.http._policies import HostPolicy, HostStats, HttpPolicies
from buttress.http._provide import register_services
from buttress.http._retry_after import parse_retry_after
from buttress.http._transport import AsyncResilientTransport, ResilientTransport

__all__ = [
    "AsyncHttpClient",
    "AsyncResilientTransport",
    "Download",
    "HostPolicy",
    "HostStats",
    "HttpClient",
    "HttpPolicies",
    "ResilientTransport",
    "attempts_of",
    "get_async_http_client",
    "get_http_client",
    "get_http_policies",
    "parse_retry_after",
    "register_services",
    "reset_http",
]
