"""HttpClient and AsyncHttpClient: httpx clients with the per-host policies and buttress errors.

They are thin on purpose: the policies live in the transport (so a plain httpx client can have them too);
the clients add what a service wants on top: per-request ``deadline``/``retry``/``idempotency_key``,
errors that carry the host, method, URL (no query) and attempts, ``raise_for_status`` by default, a
``stream()`` context manager and a capped, all-or-nothing ``download()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import httpx

from buttress.clock import Clock
from buttress.errors import UpstreamError, UpstreamStatusError, UpstreamTimeout, ValidationError
from buttress.http._core import DEADLINE, RETRY, STREAM, attempts_of, limits, public_url, resolve_policies
from buttress.http._download import Download, adownload_to, check_download, download_to
from buttress.http._policies import HostStats, HttpPolicies, authority
from buttress.http._retry_after import parse_retry_after
from buttress.http._transport import AsyncResilientTransport, ResilientTransport
from buttress.http._validate import EXAMPLE_URL, build_error, check_headers, shown_url

if TYPE_CHECKING:
    from buttress.config import HttpSettings

__all__ = ["AsyncHttpClient", "HttpClient"]

Progress = Callable[[int, int | None], object]


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
"""The policy's value (deadline) or the client's (raise_for_status)."""


def _user_agent(settings: HttpSettings) -> str:
    if settings.user_agent:
        return settings.user_agent
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - ~60 ms; only the default User-Agent

    try:
        return f"buttress/{version('buttress')}"
    except PackageNotFoundError:  # pragma: no cover - a source checkout without metadata
        return "buttress"


def _base_url(base_url: object) -> httpx.URL:
    """The client's base URL, refused at once when it is not one."""
    try:
        return httpx.URL(base_url)  # type: ignore[arg-type]  # anything else is refused just below
    except (TypeError, httpx.InvalidURL) as error:
        raise ValidationError(
            f"base_url {shown_url(base_url)!r} is not a URL ({error}); e.g. base_url='https://api.example.com/v1'",
            field="base_url",
        ) from None


def _check_key(key: object) -> str:
    """An Idempotency-Key: printable ASCII on one line, as it travels in a header."""
    if not (isinstance(key, str) and key and key.isascii() and key.isprintable()):
        raise ValidationError(
            f"idempotency_key must be non-empty printable ASCII text (it is sent as a header), got {key!r}; "
            "e.g. idempotency_key=str(uuid.uuid4())",
            field="idempotency_key",
        )
    return key


class _Base:
    """Construction and the request/response handling both clients share."""

    def __init__(
        self,
        policies: HttpPolicies | None,
        settings: HttpSettings | None,
        clock: Clock | None,
        raise_for_status: bool | None,
    ) -> None:
        self.policies = policies = resolve_policies(policies, settings, clock)
        self.settings = policies.settings
        self.raise_for_status = (
            self.settings.raise_for_status if raise_for_status is None else raise_for_status
        )
        self._idempotency_header = self.settings.idempotency_header

    def _client_headers(self, headers: Mapping[str, str] | None) -> httpx.Headers:
        """The headers every request carries, refused at once when one could never be sent."""
        try:
            built = httpx.Headers({"User-Agent": _user_agent(self.settings), **(headers or {})})
        except (TypeError, ValueError, AttributeError) as error:
            raise build_error(error, headers=headers) from error
        check_headers(built.raw, set())
        return built

    def _build(
        self,
        client: httpx.Client | httpx.AsyncClient,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any,
        headers: Mapping[str, str] | None,
        content: Any,
        data: Any,
        files: Any,
        json: Any,
        timeout: Any,
        deadline: float | _Default | None,
        retry: bool | None,
        idempotency_key: str | None,
        stream: bool,
    ) -> httpx.Request:
        """The httpx request, with the per-request options as extensions the transport reads."""
        extensions: dict[str, Any] = {}
        if deadline is not DEFAULT:
            extensions[DEADLINE] = deadline  # checked by the transport, with every other option
        if retry is not None:
            extensions[RETRY] = retry
        if stream:
            extensions[STREAM] = True
        if idempotency_key is not None:
            headers = {**(headers or {}), self._idempotency_header: _check_key(idempotency_key)}
        try:
            return client.build_request(
                method, url, params=params, headers=headers, content=content, data=data, files=files,
                json=json, timeout=timeout, extensions=extensions,
            )  # fmt: skip
        except httpx.InvalidURL as error:
            raise ValidationError(
                f"url {shown_url(url)!r} is not a valid URL: {error}; {EXAMPLE_URL}", field="url"
            ) from error
        except (TypeError, ValueError, AttributeError) as error:  # what httpx raises for a bad argument
            raise build_error(
                error, method=method, url=url, headers=headers, params=params, content=content, data=data,
                files=files, json=json,
            ) from error  # fmt: skip

    def _failed(self, request: httpx.Request, error: httpx.HTTPError) -> Exception:
        """The buttress error for an httpx failure, with the request's facts in its context."""
        attempts = attempts_of(error) or 1
        context = {
            "host": authority(request.url),
            "method": request.method,
            "url": public_url(request.url),
            "attempts": attempts,
            "error": type(error).__name__,
        }
        kind = UpstreamTimeout if isinstance(error, httpx.TimeoutException) else UpstreamError
        what = "timed out" if kind is UpstreamTimeout else "failed"
        message = (
            f"{request.method} {context['url']} {what} after {attempts} attempt(s): {type(error).__name__}"
        )
        detail = str(error)
        return kind(f"{message}: {detail}" if detail else message, context=context)

    def _status_error(self, request: httpx.Request, response: httpx.Response) -> UpstreamStatusError:
        attempts = attempts_of(response) or 1
        url = public_url(request.url)
        context: dict[str, Any] = {
            "host": authority(request.url),
            "method": request.method,
            "url": url,
            "attempts": attempts,
        }
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.policies.clock.time())
        if retry_after is not None:
            context["retry_after"] = retry_after
        return UpstreamStatusError(
            f"{request.method} {url} answered {response.status_code} {response.reason_phrase} "
            f"after {attempts} attempt(s)",
            status_code=response.status_code,
            response=response,
            context=context,
        )

    def _should_raise(self, response: httpx.Response, raise_for_status: bool | None) -> bool:
        wanted = self.raise_for_status if raise_for_status is None else raise_for_status
        return wanted and response.status_code >= 400

    def stats(self, host: str | None = None) -> list[HostStats]:
        """What was sent per host: requests by status class, retries, refusals, breaker state, waits."""
        return self.policies.stats(host)


class HttpClient(_Base):
    """A pooled sync HTTP client with per-host retry, breaker, limiter, bulkhead and deadline.

    Use one per process (:func:`~buttress.http.get_http_client`) or as a context manager. Every method
    returns an ``httpx.Response``; ``client.httpx`` is the underlying ``httpx.Client`` for anything else.
    """

    def __init__(
        self,
        *,
        base_url: str | httpx.URL = "",
        headers: Mapping[str, str] | None = None,
        settings: HttpSettings | None = None,
        policies: HttpPolicies | None = None,
        transport: httpx.BaseTransport | None = None,
        raise_for_status: bool | None = None,
        follow_redirects: bool = False,
        verify: Any = True,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(policies, settings, clock, raise_for_status)
        if transport is None:
            transport = httpx.HTTPTransport(limits=limits(self.settings), verify=verify)
        self.transport = ResilientTransport(transport, policies=self.policies, clock=clock)
        self.httpx = httpx.Client(
            base_url=_base_url(base_url),
            headers=self._client_headers(headers),
            transport=self.transport,
            timeout=httpx.Timeout(None),
            follow_redirects=follow_redirects,
        )

    def __repr__(self) -> str:
        return f"HttpClient({self.policies!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self.httpx.close()

    @property
    def is_closed(self) -> bool:
        return self.httpx.is_closed

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        deadline: float | _Default | None = DEFAULT,
        retry: bool | None = None,
        idempotency_key: str | None = None,
        raise_for_status: bool | None = None,
    ) -> httpx.Response:
        """Send a request through the host's policies; see the module docs for the options."""
        return self._send(
            method, url, params=params, headers=headers, content=content, data=data, files=files, json=json,
            timeout=timeout, deadline=deadline, retry=retry, idempotency_key=idempotency_key,
            raise_for_status=raise_for_status, stream=False,
        )  # fmt: skip

    def _send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any,
        headers: Mapping[str, str] | None,
        content: Any,
        data: Any,
        files: Any,
        json: Any,
        timeout: Any,
        deadline: float | _Default | None,
        retry: bool | None,
        idempotency_key: str | None,
        raise_for_status: bool | None,
        stream: bool,
    ) -> httpx.Response:
        request = self._build(
            self.httpx, method, url, params=params, headers=headers, content=content, data=data, files=files,
            json=json, timeout=timeout, deadline=deadline, retry=retry, idempotency_key=idempotency_key,
            stream=stream,
        )  # fmt: skip
        try:
            response = self.httpx.send(request, stream=stream)
        except httpx.HTTPError as error:
            raise self._failed(request, error) from error
        if self._should_raise(response, raise_for_status):
            try:
                response.read()
            except httpx.HTTPError:
                pass  # the status says enough; the body was only for the error's response
            finally:
                response.close()
            raise self._status_error(request, response)
        return response

    def get(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return self.request("GET", url, **options)

    def head(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return self.request("HEAD", url, **options)

    def options(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **options)

    def post(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return self.request("POST", url, **options)

    def put(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return self.request("PUT", url, **options)

    def patch(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return self.request("PATCH", url, **options)

    def delete(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return self.request("DELETE", url, **options)

    @contextmanager
    def stream(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        deadline: float | _Default | None = DEFAULT,
        retry: bool | None = None,
        idempotency_key: str | None = None,
        raise_for_status: bool | None = None,
    ) -> Iterator[httpx.Response]:
        """A response whose body is read as you go; the deadline bounds the wait for its headers only."""
        response = self._send(
            method, url, params=params, headers=headers, content=content, data=data, files=files, json=json,
            timeout=timeout, deadline=deadline, retry=retry, idempotency_key=idempotency_key,
            raise_for_status=raise_for_status, stream=True,
        )  # fmt: skip
        try:
            yield response
        finally:
            response.close()

    def download(
        self,
        url: str | httpx.URL,
        dest: str | Path,
        *,
        max_bytes: int | None = None,
        progress: Progress | None = None,
        chunk_size: int = 64 * 1024,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | _Default | None = DEFAULT,
    ) -> Download:
        """Stream ``url`` into ``dest``: all of it, or nothing (see :mod:`buttress.http._download`)."""
        path = check_download(dest, max_bytes, chunk_size)  # before anything is sent
        with self.stream("GET", url, params=params, headers=headers, deadline=deadline) as response:
            return download_to(response, path, max_bytes=max_bytes, progress=progress, chunk_size=chunk_size)


class AsyncHttpClient(_Base):
    """:class:`HttpClient` for asyncio: the same policies, awaited waits, ``aclose``."""

    def __init__(
        self,
        *,
        base_url: str | httpx.URL = "",
        headers: Mapping[str, str] | None = None,
        settings: HttpSettings | None = None,
        policies: HttpPolicies | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        raise_for_status: bool | None = None,
        follow_redirects: bool = False,
        verify: Any = True,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(policies, settings, clock, raise_for_status)
        if transport is None:
            transport = httpx.AsyncHTTPTransport(limits=limits(self.settings), verify=verify)
        self.transport = AsyncResilientTransport(transport, policies=self.policies, clock=clock)
        self.httpx = httpx.AsyncClient(
            base_url=_base_url(base_url),
            headers=self._client_headers(headers),
            transport=self.transport,
            timeout=httpx.Timeout(None),
            follow_redirects=follow_redirects,
        )

    def __repr__(self) -> str:
        return f"AsyncHttpClient({self.policies!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.httpx.aclose()

    @property
    def is_closed(self) -> bool:
        return self.httpx.is_closed

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - httpx's per-phase timeouts
        deadline: float | _Default | None = DEFAULT,
        retry: bool | None = None,
        idempotency_key: str | None = None,
        raise_for_status: bool | None = None,
    ) -> httpx.Response:
        """Send a request through the host's policies."""
        return await self._send(
            method, url, params=params, headers=headers, content=content, data=data, files=files, json=json,
            timeout=timeout, deadline=deadline, retry=retry, idempotency_key=idempotency_key,
            raise_for_status=raise_for_status, stream=False,
        )  # fmt: skip

    async def _send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any,
        headers: Mapping[str, str] | None,
        content: Any,
        data: Any,
        files: Any,
        json: Any,
        timeout: Any,  # noqa: ASYNC109 - httpx's per-phase timeouts
        deadline: float | _Default | None,
        retry: bool | None,
        idempotency_key: str | None,
        raise_for_status: bool | None,
        stream: bool,
    ) -> httpx.Response:
        request = self._build(
            self.httpx, method, url, params=params, headers=headers, content=content, data=data, files=files,
            json=json, timeout=timeout, deadline=deadline, retry=retry, idempotency_key=idempotency_key,
            stream=stream,
        )  # fmt: skip
        try:
            response = await self.httpx.send(request, stream=stream)
        except httpx.HTTPError as error:
            raise self._failed(request, error) from error
        if self._should_raise(response, raise_for_status):
            try:
                await response.aread()
            except httpx.HTTPError:
                pass
            finally:
                await response.aclose()
            raise self._status_error(request, response)
        return response

    async def get(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return await self.request("GET", url, **options)

    async def head(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return await self.request("HEAD", url, **options)

    async def options(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return await self.request("OPTIONS", url, **options)

    async def post(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return await self.request("POST", url, **options)

    async def put(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return await self.request("PUT", url, **options)

    async def patch(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return await self.request("PATCH", url, **options)

    async def delete(self, url: str | httpx.URL, **options: Any) -> httpx.Response:
        return await self.request("DELETE", url, **options)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - httpx's per-phase timeouts
        deadline: float | _Default | None = DEFAULT,
        retry: bool | None = None,
        idempotency_key: str | None = None,
        raise_for_status: bool | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A response whose body is read as you go; the deadline bounds the wait for its headers only."""
        response = await self._send(
            method, url, params=params, headers=headers, content=content, data=data, files=files, json=json,
            timeout=timeout, deadline=deadline, retry=retry, idempotency_key=idempotency_key,
            raise_for_status=raise_for_status, stream=True,
        )  # fmt: skip
        try:
            yield response
        finally:
            await response.aclose()

    async def download(
        self,
        url: str | httpx.URL,
        dest: str | Path,
        *,
        max_bytes: int | None = None,
        progress: Progress | None = None,
        chunk_size: int = 64 * 1024,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | _Default | None = DEFAULT,
    ) -> Download:
        """Stream ``url`` into ``dest``: all of it, or nothing; file writes run off the event loop."""
        path = check_download(dest, max_bytes, chunk_size)  # before anything is sent
        async with self.stream("GET", url, params=params, headers=headers, deadline=deadline) as response:
            return await adownload_to(
                response, path, max_bytes=max_bytes, progress=progress, chunk_size=chunk_size
            )
