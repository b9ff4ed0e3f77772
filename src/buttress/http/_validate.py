"""Caller mistakes in a request, refused with a ValidationError before any policy runs.

A bad header, URL, method or option is the caller's fault, not the host's: sent on, it would come back as
an upstream failure and count against the host's breaker (five of them open it, and with the Redis store
every process is refused). So the transport checks each request once, before it picks the host's policy:
:func:`check_request` (method, scheme, headers, per-request options) on every request, and
:func:`check_host` (host name and port) only the first time a host is seen, as the policy table keeps the
hosts that passed. :func:`build_error` names the argument httpx could not even build a request from.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable
from typing import Any, Final

import httpx

from buttress.errors import ValidationError

__all__ = ["EXAMPLE_URL", "build_error", "check_headers", "check_host", "check_request", "shown_url"]

_SCHEMES: Final = frozenset({"http", "https"})
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: methods and header names
_BYTES_TOKEN: Final = re.compile(_TOKEN.pattern.encode())
_LABEL: Final = re.compile(rb"[A-Za-z0-9_-]{1,63}")  # one DNS label (underscores occur in real names)
_MAX_NAME: Final = 253  # a DNS name's length, without the root's trailing dot
_MAX_GOOD_NAMES: Final = 1024
_USERINFO: Final = re.compile(r"//[^/]*@")
EXAMPLE_URL: Final = "e.g. 'https://api.example.com/v1/items'"


def check_request(request: httpx.Request, good_names: set[bytes]) -> dict[str, float]:
    """Refuse a request a server could not take, or that asks for impossible timeouts or options.

    Returns the timeouts the request asks for (the phases it sets). ``good_names`` holds the header names
    already checked (the same few on every request), so each is checked once; the caller owns it (one per
    transport).
    """
    method = request.method
    if method not in _METHODS and not (isinstance(method, str) and _TOKEN.fullmatch(method)):
        raise ValidationError(
            f"method must be an HTTP method name (letters, no spaces), got {method!r}; e.g. 'GET' or 'POST'",
            field="method",
        )
    url = request.url
    if url.scheme not in _SCHEMES:
        problem = f"has scheme {url.scheme!r}: only http and https" if url.scheme else "is not absolute"
        raise _url_error(url, problem, f"{EXAMPLE_URL}, or a path with the client's base_url set")
    check_headers(request.headers.raw, good_names)
    extensions = request.extensions
    asked: dict[str, float] = {}
    timeouts = extensions.get("timeout")
    if timeouts:
        for phase, seconds in timeouts.items():
            if seconds is not None:
                _check_seconds(seconds, "timeout", f"{phase} timeout", "e.g. timeout=10.0, or None for none")
                asked[phase] = seconds
    if "buttress.deadline" in extensions:
        deadline = extensions["buttress.deadline"]
        if deadline is not None and not (_is_number(deadline) and deadline > 0):  # NaN is not > 0
            raise ValidationError(
                f"deadline must be seconds > 0 or None for no deadline, got {deadline!r}; e.g. deadline=5.0",
                field="deadline",
            )
    retry = extensions.get("buttress.retry")
    if retry is not None and type(retry) is not bool:
        raise ValidationError(
            f"retry must be True, False or None (the method decides), got {retry!r}; e.g. retry=True",
            field="retry",
        )
    return asked


def check_headers(headers: list[tuple[bytes, bytes]], good_names: set[bytes]) -> None:
    """Refuse a header name that is no token, or a value with CR, LF or NUL; ``good_names`` passed before."""
    for name, value in headers:
        if name not in good_names:
            _check_header_name(name, good_names)
        if 10 in value or 13 in value or 0 in value:  # LF, CR, NUL: a forged header line, or a cut one
            raise ValidationError(
                f"headers: the value of {name.decode('latin-1')!r} holds a line break or NUL byte, which "
                "would end the header early (header injection); remove CR, LF and NUL from header values",
                field="headers",
            )


def check_host(url: httpx.URL) -> None:
    """Refuse a host that is no DNS name or IP address, or a port outside 1-65535."""
    port = url.port
    if port is not None and not 0 < port < 65536:
        raise _url_error(url, f"has port {port}, outside 1-65535", "e.g. 'http://127.0.0.1:8080/'")
    raw = url.raw_host  # IDNA-encoded: 'xn--...' for a non-ASCII name
    if b":" in raw:
        return  # an IPv6 literal, which httpx's parser already checked
    name = raw[:-1] if raw.endswith(b".") else raw
    if not name or len(name) > _MAX_NAME or not all(_LABEL.fullmatch(label) for label in name.split(b".")):
        raise _url_error(
            url,
            "has no valid host: a host name is labels of 1 to 63 letters, digits, '-' or '_' joined by dots, "
            f"{_MAX_NAME} characters at most",
            EXAMPLE_URL,
        )
    if name.rpartition(b".")[2].isdigit():  # a numeric top label: it must be an IPv4 address
        try:
            ipaddress.IPv4Address(name.decode("ascii"))
        except ValueError:
            raise _url_error(
                url, "has a host that is not an IPv4 address", "e.g. 'http://10.0.0.1/'"
            ) from None


def build_error(error: Exception, **arguments: Any) -> ValidationError:
    """The ValidationError for a request httpx could not build, naming the argument at fault."""
    for field, value in arguments.items():
        problem = _PROBES[field](value)
        if problem is not None:
            return ValidationError(f"{field}: {problem}", field=field)
    return ValidationError(
        f"the request could not be built: {type(error).__name__}: {error}", field="request"
    )


# -- helpers ---------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_seconds(value: object, field: str, what: str, fix: str) -> None:
    if not (_is_number(value) and 0 < value < math.inf):  # type: ignore[operator]  # a number, checked first
        raise ValidationError(
            f"{what} must be a finite number of seconds > 0, got {value!r}; {fix}", field=field
        )


def _check_header_name(name: bytes, good_names: set[bytes]) -> None:
    if not _BYTES_TOKEN.fullmatch(name):
        raise ValidationError(
            f"headers: {name.decode('latin-1')!r} is not a header name (letters, digits and -_.!#$%&'*+^`|~, "
            "no spaces or line breaks); e.g. 'X-Request-Id'",
            field="headers",
        )
    if len(good_names) < _MAX_GOOD_NAMES:
        good_names.add(name)


def shown_url(url: object) -> str:
    """``url`` without credentials, query or fragment: safe to put in an error."""
    text = str(url).split("?", 1)[0].split("#", 1)[0]
    return _USERINFO.sub("//", text, count=1)


def _url_error(url: httpx.URL, problem: str, fix: str) -> ValidationError:
    return ValidationError(f"url {shown_url(url)!r} {problem}; {fix}", field="url")


def _probe_method(value: object) -> str | None:
    if isinstance(value, str) and (value in _METHODS or _TOKEN.fullmatch(value)):
        return None
    return f"must be an HTTP method name, got {value!r}; e.g. 'GET' or 'POST'"


def _probe_url(value: object) -> str | None:
    if isinstance(value, str | httpx.URL):
        return None
    return f"must be a str or httpx.URL, got {type(value).__name__}; e.g. 'https://api.example.com/v1/items'"


def _probe_build(field: str, fix: str) -> Callable[[object], str | None]:
    """A probe that builds a request from this one argument alone and reports what httpx says about it."""

    def probe(value: object) -> str | None:
        if value is None:
            return None
        alone: dict[str, Any] = {field: value}
        try:
            httpx.Request("POST", "http://localhost/", **alone)
        except (TypeError, ValueError, AttributeError) as error:
            return f"{type(error).__name__}: {error}; {fix}"
        return None

    return probe


def _probe_json(value: object) -> str | None:
    if value is None:
        return None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        return f"cannot be sent as JSON ({error}); pass dicts, lists, str, finite numbers, bools and None"
    return None


_PROBES: Final = {
    "method": _probe_method,
    "url": _probe_url,
    "headers": _probe_build(
        "headers", "pass a mapping of str to ASCII str (or bytes), e.g. headers={'X-Request-Id': 'abc'}"
    ),
    "params": _probe_build("params", "pass a mapping or a list of pairs, e.g. params={'page': 2}"),
    "content": _probe_build("content", "pass bytes, str or an iterator of bytes, e.g. content=b'...'"),
    "data": _probe_build("data", "pass a mapping of form fields, e.g. data={'name': 'x'}, or use content="),
    "files": _probe_build(
        "files", "pass a mapping of names to files, e.g. files={'upload': open(path, 'rb')}"
    ),
    "json": _probe_json,
}
