"""Built-in health checks: Redis, database, disk, memory, HTTP reachability and required settings.

Each factory returns a configured :class:`HealthCheck` for :meth:`HealthRegistry.register`. Client
libraries (redis, SQLAlchemy, httpx) are imported when a factory is called, so importing
:mod:`buttress.observe.health` stays cheap for the CLI. Blocking clients get socket timeouts equal to
the check's timeout, so a thread abandoned by the runner ends soon after (see ``_health_core``).
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections.abc import Container, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import psutil
from pydantic import SecretStr

from buttress._extras import require
from buttress.clock import SYSTEM_CLOCK
from buttress.errors import ValidationError
from buttress.health_types import CheckResult, describe_exception
from buttress.observe._health_core import HealthCheck

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

__all__ = [
    "database_check",
    "disk_check",
    "http_check",
    "memory_check",
    "redis_check",
    "required_settings_check",
]

Groups = Iterable[str] | str
Threshold = float | str | None
"""A number or ``"10%"`` is a percentage; ``"500MB"`` or ``"2GiB"`` (B, KB..TB, KiB..TiB) a byte count."""

_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_THRESHOLD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[kmgt]i?b|b)\s*$", re.IGNORECASE)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def human_bytes(count: float) -> str:
    """``123456789`` -> ``"117.7 MiB"``: binary units, as ``df -h`` shows them."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


# -- Redis ---------------------------------------------------------------------------------------


def redis_check(
    url: str,
    *,
    name: str = "redis",
    critical: bool = True,
    timeout: float = 2.0,
    groups: Groups = ("readiness",),
) -> HealthCheck:
    """PING the Redis server at ``url``; observedValue is the round trip in milliseconds.

    A sync client with a connection pool, not an asyncio one: it survives the fresh event loop of
    each :meth:`HealthRegistry.run_sync`, and it does not retry, because a health check reports.
    """
    from buttress._redis import check_url, mask_text, plain_client  # noqa: PLC0415 - redis-py is imported on use, see module docstring

    try:
        check_url(url)  # the URL's shape, password masked in the error (a cluster URL without hosts, say)
        client = plain_client(url, timeout)
    except ValueError as exc:  # ValidationError is one too
        raise ValidationError(
            f"redis_check needs a Redis URL: {mask_text(str(exc), url)}", field="url"
        ) from None

    def ping() -> CheckResult:
        start = SYSTEM_CLOCK.monotonic()
        client.ping()
        return CheckResult("pass", observed_value=_ms(SYSTEM_CLOCK.monotonic() - start), observed_unit="ms")

    return HealthCheck(
        name=name,
        fn=ping,
        critical=critical,
        timeout=timeout,
        groups=_groups(groups),
        component_type="datastore",
        measurement="responseTime",
        observed_unit="ms",
        close=client.close,
    )


# -- database ------------------------------------------------------------------------------------


def sqlalchemy_url(url: str) -> URL:
    """Parse ``url``; bare ``postgresql://`` and ``postgres://`` get psycopg 3, the driver buttress ships."""
    require("sqlalchemy", "db", "the database health check")
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - imported on use, see module docstring
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415 - imported on use, see module docstring

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValidationError(
            "database URL is not a SQLAlchemy URL; expected e.g. postgresql+psycopg://user@host:5432/db "
            "or sqlite:///path/to/file.db",
            field="url",
        ) from exc
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def database_check(
    url: str,
    *,
    name: str = "database",
    critical: bool = True,
    timeout: float = 2.0,
    groups: Groups = ("readiness",),
) -> HealthCheck:
    """Run ``SELECT 1`` through SQLAlchemy; observedValue is the round trip in milliseconds.

    The engine is created here, so importing the driver does not eat into the first run's timeout; it
    is reused, disposed when the registry closes and recreated by the next run. If it cannot be created
    (a driver is not installed) the check fails with the reason instead of the registration crashing.
    """
    parsed = sqlalchemy_url(url)
    state: dict[str, Engine] = {}
    lock = threading.Lock()

    def engine() -> Engine:
        import sqlalchemy  # noqa: PLC0415 - imported on use, see module docstring

        with lock:
            if "engine" not in state:
                if parsed.get_backend_name() == "sqlite":
                    connect_args: dict[str, Any] = {"timeout": timeout}
                else:  # libpq takes whole seconds
                    connect_args = {"connect_timeout": max(1, math.ceil(timeout))}
                state["engine"] = sqlalchemy.create_engine(parsed, connect_args=connect_args)
            return state["engine"]

    def select_one() -> CheckResult:
        import sqlalchemy  # noqa: PLC0415 - imported on use, see module docstring
        from sqlalchemy.exc import DBAPIError  # noqa: PLC0415 - imported on use, see module docstring

        start = SYSTEM_CLOCK.monotonic()
        try:
            with engine().connect() as connection:
                connection.execute(sqlalchemy.text("SELECT 1")).scalar()
        except DBAPIError as exc:  # the driver's message, without SQLAlchemy's SQL echo and doc link
            return CheckResult("fail", describe_exception(exc.orig or exc))
        return CheckResult("pass", observed_value=_ms(SYSTEM_CLOCK.monotonic() - start), observed_unit="ms")

    def close() -> None:
        with lock:
            created = state.pop("engine", None)
        if created is not None:
            created.dispose()

    with contextlib.suppress(Exception):  # reported by the check when it runs
        engine()

    return HealthCheck(
        name=name,
        fn=select_one,
        critical=critical,
        timeout=timeout,
        groups=_groups(groups),
        component_type="datastore",
        component_id=parsed.get_backend_name(),
        measurement="responseTime",
        observed_unit="ms",
        close=close,
    )


# -- disk and memory -----------------------------------------------------------------------------


def parse_threshold(value: Threshold, field: str) -> tuple[Literal["percent", "bytes"], float] | None:
    """Read a disk threshold: a number or ``"N%"`` is a percentage, ``"N<unit>"`` a byte count."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value <= 100:
            raise ValidationError(
                f"{field} as a number is a percentage from 0 to 100, got {value!r}", field=field
            )
        return ("percent", float(value))
    match = _THRESHOLD.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValidationError(
            f"{field} must be a percentage (10 or '10%') or a size with a unit ('500MB', '2GiB'), "
            f"got {value!r}",
            field=field,
        )
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit == "%":
        return parse_threshold(number, field)
    return ("bytes", number * _UNITS[unit])


def _below(threshold: tuple[str, float] | None, free_percent: float, free_bytes: int) -> bool:
    if threshold is None:
        return False
    kind, limit = threshold
    return (free_percent if kind == "percent" else free_bytes) < limit


def disk_check(
    path: str = ".",
    *,
    warn_below: Threshold = "10%",
    fail_below: Threshold = "5%",
    name: str = "disk",
    critical: bool = True,
    timeout: float = 2.0,
    groups: Groups = ("readiness",),
) -> HealthCheck:
    """Free space on the filesystem holding ``path``; observedValue is the free percentage."""
    warn, fail = parse_threshold(warn_below, "warn_below"), parse_threshold(fail_below, "fail_below")
    if warn is not None and fail is not None and warn[0] == fail[0] and fail[1] > warn[1]:
        raise ValidationError(
            f"fail_below ({fail_below!r}) must not be above warn_below ({warn_below!r})", field="fail_below"
        )

    def free_space() -> CheckResult:
        usage = psutil.disk_usage(path)
        free_percent = round(100.0 - usage.percent, 2)
        reading = (
            f"{free_percent:.1f}% free ({human_bytes(usage.free)} of {human_bytes(usage.total)}) on {path}"
        )
        fix = "free space or grow the volume"
        if _below(fail, free_percent, usage.free):
            return CheckResult(
                "fail", f"{reading}, below fail_below={fail_below}; {fix}", free_percent, "percent"
            )
        if _below(warn, free_percent, usage.free):
            return CheckResult(
                "warn", f"{reading}, below warn_below={warn_below}; {fix}", free_percent, "percent"
            )
        return CheckResult("pass", reading, free_percent, "percent")

    return HealthCheck(
        name=name,
        fn=free_space,
        critical=critical,
        timeout=timeout,
        groups=_groups(groups),
        component_type="system",
        component_id=path,
        measurement="utilization",
        observed_unit="percent",
    )


def _percent(value: float | None, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValidationError(f"{field} is a percentage from 0 to 100, got {value!r}", field=field)
    return float(value)


def memory_check(
    *,
    warn_above: float | None = 90.0,
    fail_above: float | None = 95.0,
    name: str = "memory",
    critical: bool = True,
    timeout: float = 2.0,
    groups: Groups = ("readiness",),
) -> HealthCheck:
    """System memory in use (psutil ``virtual_memory().percent``); observedValue is the used percentage."""
    warn, fail = _percent(warn_above, "warn_above"), _percent(fail_above, "fail_above")
    if warn is not None and fail is not None and fail < warn:
        raise ValidationError(
            f"fail_above ({fail_above!r}) must not be below warn_above ({warn_above!r})", field="fail_above"
        )

    def used_memory() -> CheckResult:
        memory = psutil.virtual_memory()
        used = round(memory.percent, 2)
        reading = f"memory {used:.1f}% used ({human_bytes(memory.available)} available)"
        if fail is not None and used >= fail:
            return CheckResult("fail", f"{reading}, at or above fail_above={fail:g}%", used, "percent")
        if warn is not None and used >= warn:
            return CheckResult("warn", f"{reading}, at or above warn_above={warn:g}%", used, "percent")
        return CheckResult("pass", reading, used, "percent")

    return HealthCheck(
        name=name,
        fn=used_memory,
        critical=critical,
        timeout=timeout,
        groups=_groups(groups),
        component_type="system",
        measurement="utilization",
        observed_unit="percent",
    )


# -- HTTP ----------------------------------------------------------------------------------------


def safe_url(url: str) -> str:
    """The URL without credentials, query or fragment: fit for a public health document."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _describe_statuses(expected: Container[int]) -> str:
    if isinstance(expected, range) and expected.step == 1 and len(expected) > 0:
        return f"{expected.start}-{expected.stop - 1}"
    if isinstance(expected, Iterable):
        return ", ".join(str(code) for code in sorted(expected))
    return repr(expected)  # pragma: no cover - a bare Container cannot be listed


def _sendable_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers`` as http_check sends them, refused now if one could never be sent.

    The message names the header, never its value: a health check's headers are usually an API key, and
    the HTTP library's own error would quote it (and a health document is served to anyone).
    """
    checked = dict(headers or {})
    for name, value in checked.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValidationError(
                f"headers: {name!r} is not a header name (letters, digits and -_.!#$%&'*+^`|~); "
                "e.g. 'Authorization'",
                field="headers",
            )
        if not isinstance(value, str) or not value.isascii() or any(c in value for c in "\r\n\0"):
            raise ValidationError(
                f"headers: the value of {name!r} is not a string of ASCII characters without CR, LF or NUL "
                "(the value is not shown: it may be a key); check the variable it comes from",
                field="headers",
            )
    return checked


def http_check(
    url: str,
    *,
    expected_status: Container[int] = range(200, 400),
    timeout: float = 2.0,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    name: str | None = None,
    critical: bool = True,
    groups: Groups = ("readiness",),
) -> HealthCheck:
    """Request ``url`` with httpx and compare the status; observedValue is the latency in milliseconds.

    Redirects are not followed (a 3xx is reachable by default). The client is created per run because an
    async client is bound to its event loop and :meth:`HealthRegistry.run_sync` makes a new loop each time.
    ``name`` defaults to the URL's host.
    """
    import httpx  # noqa: PLC0415 - imported on use, see module docstring

    shown = safe_url(url)
    host = urlsplit(url).hostname
    if not host:
        raise ValidationError(f"http_check needs an absolute http(s) URL, got {shown!r}", field="url")
    allowed = _describe_statuses(expected_status)
    sent = _sendable_headers(headers)

    async def request() -> CheckResult:
        start = SYSTEM_CLOCK.monotonic()
        try:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                response = await client.request(method, url, headers=sent)
        except httpx.HTTPError as exc:
            return CheckResult("fail", f"{method} {shown} failed: {describe_exception(exc)}")
        latency = _ms(SYSTEM_CLOCK.monotonic() - start)
        code = response.status_code
        if code in expected_status:
            return CheckResult("pass", f"{method} {shown} -> {code}", latency, "ms")
        return CheckResult("fail", f"{method} {shown} returned {code}, expected {allowed}", latency, "ms")

    return HealthCheck(
        name=name or host,
        fn=request,
        critical=critical,
        timeout=timeout,
        groups=_groups(groups),
        component_type="http",
        component_id=shown,
        measurement="responseTime",
        observed_unit="ms",
    )


# -- required settings ---------------------------------------------------------------------------


def _is_missing(value: SecretStr | str | None) -> bool:
    if value is None:
        return True
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return not str(value).strip()


def _missing_message(variable: str, purpose: str | None, *, required: bool) -> str:
    if required:
        if purpose:
            return f"{variable} is required but not set: {purpose} cannot work; set it and restart"
        return f"{variable} is required but not set; set it and restart"
    purpose = purpose or "the features that use it"
    return f"{variable} is not set: {purpose} are disabled; set it to enable them"


def required_settings_check(
    required: Mapping[str, SecretStr | str | None],
    optional: Mapping[str, SecretStr | str | None] | None = None,
    *,
    purposes: Mapping[str, str] | None = None,
    name: str = "settings",
    critical: bool = True,
    timeout: float = 2.0,
    groups: Groups = ("readiness",),
) -> HealthCheck:
    """Report settings (API keys, URLs) that are not set, by variable name; values are never shown.

    ``required`` and ``optional`` map an environment variable name to its value (``None``, ``""`` or an
    empty :class:`SecretStr` count as not set); ``purposes`` names what each variable enables, e.g.
    ``{"SPOTIFY_API_KEY": "Spotify features"}``. A missing required variable fails the check, a
    missing optional one warns. The mappings are read on every run, so a live mapping is fine.
    """
    optional = optional if optional is not None else {}
    purposes = purposes if purposes is not None else {}
    for mapping, field in ((required, "required"), (optional, "optional"), (purposes, "purposes")):
        if not isinstance(mapping, Mapping):
            raise ValidationError(
                f"{field} must map environment variable names to values, got {type(mapping).__name__}",
                field=field,
            )

    def settings_present() -> CheckResult:
        missing_required = [key for key, value in required.items() if _is_missing(value)]
        missing_optional = [key for key, value in optional.items() if _is_missing(value)]
        messages = [_missing_message(k, purposes.get(k), required=True) for k in missing_required]
        messages += [_missing_message(k, purposes.get(k), required=False) for k in missing_optional]
        count = len(missing_required) + len(missing_optional)
        if missing_required:
            return CheckResult("fail", "\n".join(messages), count, "missing")
        if missing_optional:
            return CheckResult("warn", "\n".join(messages), count, "missing")
        total = len(required) + len(optional)
        return CheckResult("pass", f"all {total} settings are set", 0, "missing")

    return HealthCheck(
        name=name,
        fn=settings_present,
        critical=critical,
        timeout=timeout,
        groups=_groups(groups),
        component_type="component",
        measurement="configuration",
        observed_unit="missing",
    )


def _groups(groups: Groups) -> frozenset[str]:
    return frozenset((groups,)) if isinstance(groups, str) else frozenset(groups)
