"""Redis URLs and key prefixes: checked once, shown only with the password masked."""

from __future__ import annotations

from typing import Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from buttress.errors import MASK, ValidationError

__all__ = [
    "EXAMPLE_URL",
    "SCHEMES",
    "Topology",
    "check_prefix",
    "check_url",
    "hosts",
    "invalid_url",
    "mask_text",
    "mask_url",
    "topology",
]

EXAMPLE_URL = "redis://127.0.0.1:6379/0"
CLUSTER_EXAMPLE = "redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000"
Topology = Literal["standalone", "sentinel", "cluster"]
"""How the servers behind a URL are arranged: one server, a primary found through Sentinel, or a cluster."""

_TOPOLOGIES: Final[dict[str, Topology]] = {
    "redis": "standalone",
    "rediss": "standalone",
    "unix": "standalone",
    "redis+sentinel": "sentinel",
    "rediss+sentinel": "sentinel",
    "redis+cluster": "cluster",
    "rediss+cluster": "cluster",
}
SCHEMES: Final = tuple(_TOPOLOGIES)
"""Every scheme a Redis URL may have. ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``
names sentinels and a service; ``redis+cluster://[:password@]host:port[,host:port...]`` names seed nodes."""


def mask_url(url: str) -> str:
    """``url`` with its passwords (the authority's, ``password=`` and ``sentinel_password=``) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"  # cannot tell where a password would be, so show none of it
    netloc = parts.netloc
    loose = _loose_userinfo(url, netloc)
    if loose is not None:  # "redis://:pa#ss@host": the parser cut the password short; show none of it
        user, after = loose.split(":", 1)[0], url.partition("://")[2][len(loose) + 1 :]
        return mask_url(f"{parts.scheme}://{user}:{MASK}@{after}")
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = parts.query
    if "password=" in query:
        pairs = [
            (k, MASK if k.endswith("password") else v) for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _loose_userinfo(url: str, netloc: str) -> str | None:
    """The ``user:password`` typed before the authority's '@' when its password holds an unescaped '/', '?'
    or '#' (so the parser ended the authority inside it), else None.

    That '@' is the last one before the first '/', '?' or '#' that follows the first '@' (a query value,
    ``sentinel_password=a@b``, may hold one too).
    """
    rest = url.partition("://")[2]
    if "@" in netloc or not netloc or "@" not in rest:
        return None
    first = rest.index("@")
    ends = [i for i in (rest.find(c, first) for c in "/?#") if i >= 0]
    userinfo = rest[: rest.rindex("@", 0, min(ends, default=len(rest)))]
    return userinfo if ":" in userinfo and any(c in userinfo for c in "/?#") else None


def mask_text(text: str, url: str) -> str:
    """``text`` (an error message, say) with ``url``'s password replaced by the mask wherever it appears."""
    try:
        parts = urlsplit(url)
        secrets = [parts.password, *(v for k, v in parse_qsl(parts.query) if k.endswith("password"))]
    except ValueError:
        return text
    for secret in sorted(filter(None, secrets), key=len, reverse=True):  # one inside another: longest first
        text = text.replace(secret, MASK)
    return text


def topology(url: str) -> Topology:
    """The topology a checked URL names by its scheme (:data:`SCHEMES`)."""
    return _TOPOLOGIES[urlsplit(url).scheme.lower()]


def check_url(url: object, field: str = "url") -> str:
    """``url`` if it is a Redis URL redis-py can parse, else a ValidationError naming ``field``."""
    scheme = None
    if isinstance(url, str):
        try:
            scheme = urlsplit(url).scheme
        except ValueError:
            scheme = None
    if not isinstance(url, str) or scheme is None or scheme.lower() not in _TOPOLOGIES:
        shown = repr(mask_url(url)) if isinstance(url, str) else repr(url)
        raise ValidationError(
            f"{field} must be a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL, "
            f"got {shown}; e.g. {EXAMPLE_URL}",
            field=field,
        )
    try:
        _check_ports(url)  # a port that is not a number raises here, not on the first call
    except ValueError as exc:
        raise invalid_url(url, exc, field) from None
    kind = _TOPOLOGIES[scheme.lower()]
    if kind != "standalone":
        _check_seed_list(url, kind, field)
    return url


def _check_seed_list(url: str, kind: Topology, field: str) -> None:
    """A Sentinel or cluster URL names at least one host; a cluster has one database (0) and no query
    options; a Sentinel URL names its service. Raised here, so a settings check catches it, not the first
    connection."""
    example = CLUSTER_EXAMPLE if kind == "cluster" else "redis+sentinel://127.0.0.1:26379/mymaster/0"
    if not hosts(url):
        raise ValidationError(
            f"{field} {mask_url(url)!r} names no {'seed node' if kind == 'cluster' else 'sentinel'}: "
            f"list at least one host:port, e.g. {example}",
            field=field,
        )
    if kind == "sentinel":
        from buttress._redis._sentinel import service_path  # noqa: PLC0415 - it builds on this module

        service_path(url, field)
        return
    parts = urlsplit(url)
    databases = [value for key, value in parse_qsl(parts.query) if key == "db"]
    if parts.path.strip("/") not in ("", "0") or any(value != "0" for value in databases):
        raise ValidationError(
            f"{field} {mask_url(url)!r} names a database, but a Redis Cluster has only database 0: "
            f"drop the /<db> (and ?db=), e.g. {example}",
            field=field,
        )
    options = sorted({key for key, _ in parse_qsl(parts.query, keep_blank_values=True)} - {"db"})
    if options:  # the cluster clients take only the scheme, the seeds and the password: say so
        raise ValidationError(
            f"{field} {mask_url(url)!r} has query options ({', '.join(options)}), which a cluster URL does "
            f"not take (they would be ignored): drop them, e.g. {example}",
            field=field,
        )


def _check_ports(url: str) -> None:
    """Raise ValueError for a port that is not a number in 1-65535, in each of the URL's ``host:port``s."""
    for address in hosts(url):
        _ = urlsplit(f"redis://{address}").port
    if not urlsplit(url).hostname and _loose_userinfo(url, urlsplit(url).netloc):
        raise ValueError("no host")  # "redis://:12#x@host": the host would be '' and the port 12


def hosts(url: str) -> list[str]:
    """The ``host[:port]`` items of a URL's authority (several for Sentinel and cluster seed lists)."""
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    return [item for item in netloc.split(",") if item]


def invalid_url(url: str, exc: Exception, field: str = "url") -> ValidationError:
    """The error for a URL redis-py refused (``exc``), password masked in both URL and reason."""
    try:
        loose = _loose_userinfo(url, urlsplit(url).netloc)
    except ValueError:
        loose = None
    if loose is not None:  # the reason would quote a piece of the password (as a port, say)
        return ValidationError(
            f"{field} {mask_url(url)!r} is not a valid Redis URL (its password holds '/', '?' or '#': "
            "percent-encode them as %2F, %3F, %23); e.g. redis://:p%23ss@127.0.0.1:6379/0",
            field=field,
        )
    return ValidationError(
        f"{field} {mask_url(url)!r} is not a valid Redis URL ({mask_text(str(exc), url)}); "
        f"e.g. {EXAMPLE_URL}",
        field=field,
    )


def check_prefix(prefix: object, field: str = "prefix") -> str:
    """``prefix`` if it can start Redis keys and channels: non-empty, no whitespace, no braces.

    Braces would make a Redis Cluster hash tag out of part of the prefix; whitespace is a typo.
    """
    if not isinstance(prefix, str) or not prefix or any(c.isspace() or c in "{}" for c in prefix):
        raise ValidationError(
            f"{field} must be a non-empty string without whitespace or braces, got {prefix!r}; "
            "e.g. 'myservice'",
            field=field,
        )
    return prefix
