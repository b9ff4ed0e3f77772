"""Error aggregation: many occurrences of one failure become one group with a count, not a flood of lines.

Exceptions reported through :meth:`ErrorAggregator.record` (or :func:`report_error`) are grouped by

- **type**: the exception class, qualified by its module;
- **origin**: ``module:line`` of the innermost traceback frame, where it was raised (for an exception that
  was never raised, the frame that reported it); pass ``origin=`` to group by something else;
- **normalised message**: numbers, hex ids, UUIDs, dates, IP addresses, e-mails, quoted strings and URL query
  strings become placeholders, so ``user 123 not found`` and ``user 456 not found`` are one group.

Each group keeps its count, first and last seen (wall time from the injected clock), the first occurrence's
traceback (text, tail-bounded) and raw message, and the latest context with secret-looking keys masked
(the key rules of :mod:`buttress.observe.logging`). Nothing holds on to an exception or its frames.
Before anything is kept, messages, tracebacks and context text are scrubbed (:mod:`buttress.observe.secrets`):
every secret value of the loaded settings, credentials in URLs (``scheme://user:password@host``) and
credential ``name=value`` pairs (``?api_key=...``, ``password=...``) are masked, so no group holds a secret.

Memory is bounded by ``max_groups``. When a new group arrives and the table is full, the group with the
lowest count goes, and among equals the least recently seen: the newcomer always gets in (a new recurring
failure can establish itself) while the groups that matter, the frequent ones, stay. Evictions are counted.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from buttress import errors as buttress_errors
from buttress._redaction import is_sensitive_key, mask_url_password, scrub_text
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.container import get_container
from buttress.observe.secrets import SecretScrubber, get_secret_scrubber

__all__ = [
    "ErrorAggregator",
    "ErrorGroup",
    "get_error_aggregator",
    "mask_credentials",
    "normalise_message",
    "report_error",
]

DEFAULT_MAX_GROUPS = 100
DEFAULT_MAX_TRACEBACK_CHARS = 8_000
DEFAULT_MAX_MESSAGE_CHARS = 500
_MAX_CONTEXT_ITEMS = 50
_MAX_CONTEXT_DEPTH = 4
_MAX_CONTEXT_TEXT = 500

_URL_QUERY = re.compile(r"(?P<url>\b[a-z][a-z0-9+.-]*://[^\s?#'\"]*)\?[^\s#'\"]*", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
_DATETIME = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?!\d)"
)
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
_HEX_LITERAL = re.compile(r"\b0x[0-9a-fA-F]+\b")
_HEX_WORD = re.compile(r"\b[0-9a-f]{8,}\b", re.IGNORECASE)
_SINGLE_QUOTED = re.compile(r"(?<!\w)'[^'\n]*'(?!\w)")
_DOUBLE_QUOTED = re.compile(r'"[^"\n]*"')
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\d)")


def _hex_id(match: re.Match[str]) -> str:
    """A long hex word with letters and digits is an id (a hash, an ObjectId); all digits is a number."""
    word = match.group()
    return "<hex>" if not word.isdigit() and not word.isalpha() else word


# (needle, pattern, placeholder): a pattern runs only when its needle is in the text, which skips most
# regexes for most messages. Order matters: specific shapes go before the generic ones that would eat them.
_PLACEHOLDERS: tuple[tuple[str, re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    ("://", _URL_QUERY, r"\g<url>?<query>"),
    ("@", _EMAIL, "<email>"),
    ("-", _UUID, "<uuid>"),
    ("-", _DATETIME, "<datetime>"),
    (".", _IPV4, "<ip>"),
    ("0x", _HEX_LITERAL, "<hex>"),
    ("", _HEX_WORD, _hex_id),
    ("'", _SINGLE_QUOTED, "<str>"),
    ('"', _DOUBLE_QUOTED, "<str>"),
    ("", _NUMBER, "<num>"),
)


def mask_credentials(text: str) -> str:
    """``scheme://user:password@host`` becomes ``scheme://user:**********@host``."""
    return mask_url_password(text)


def normalise_message(message: str, *, max_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> str:
    """Replace the parts of a message that vary between occurrences of one failure with placeholders."""
    text = " ".join(mask_credentials(message[: max_chars * 4]).split())
    for needle, pattern, placeholder in _PLACEHOLDERS:
        if needle in text:
            text = pattern.sub(placeholder, text)
    return _truncate(text, max_chars)


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """One kind of failure: what, where, how often, since when; a copy, safe to keep and serialise."""

    fingerprint: str
    type: str
    origin: str
    message: str
    sample_message: str
    count: int
    first_seen: float
    last_seen: float
    traceback: str
    context: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (times are Unix seconds)."""
        return asdict(self)


class _Group:
    """The mutable record behind an :class:`ErrorGroup` (guarded by the aggregator's lock)."""

    __slots__ = (
        "context",
        "count",
        "fingerprint",
        "first_seen",
        "key",
        "last_seen",
        "last_sequence",
        "sample",
        "traceback",
    )

    def __init__(self, key: _Key, sample: str, traceback_text: str, now: float) -> None:
        self.key = key
        self.fingerprint = key.fingerprint()
        self.sample = sample
        self.traceback = traceback_text
        self.count = 0
        self.first_seen = now
        self.last_seen = now
        self.last_sequence = 0
        self.context: dict[str, Any] = {}

    def seen(self, now: float, sequence: int, context: dict[str, Any]) -> None:
        self.count += 1
        self.last_seen = max(self.last_seen, now)
        self.last_sequence = sequence
        self.context = context

    def freeze(self) -> ErrorGroup:
        return ErrorGroup(
            fingerprint=self.fingerprint,
            type=self.key.type,
            origin=self.key.origin,
            message=self.key.message,
            sample_message=self.sample,
            count=self.count,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            traceback=self.traceback,
            context=dict(self.context),
        )


class _Key(NamedTuple):
    """What makes two occurrences one group; a tuple, so hashing it is cheap."""

    type: str
    origin: str
    message: str

    def fingerprint(self) -> str:
        """A short stable id of the group, to put in logs next to the error and find it here later."""
        raw = f"{self.type}\0{self.origin}\0{self.message}".encode()
        return hashlib.blake2b(raw, digest_size=8).hexdigest()


class ErrorAggregator:
    """Groups reported exceptions and keeps the ``max_groups`` that matter most; thread-safe."""

    def __init__(
        self,
        max_groups: int = DEFAULT_MAX_GROUPS,
        clock: Clock = SYSTEM_CLOCK,
        *,
        max_traceback_chars: int = DEFAULT_MAX_TRACEBACK_CHARS,
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
        scrubber: SecretScrubber | None = None,
    ) -> None:
        """``scrubber`` defaults to the process-wide one (``get_secret_scrubber()``), looked up on each
        record, so secrets registered later are masked too."""
        self._scrubber = scrubber
        self._max_groups = _positive_int(
            max_groups, "max_groups", "how many distinct groups to keep, e.g. 100"
        )
        self._max_traceback_chars = _positive_int(
            max_traceback_chars, "max_traceback_chars", "the length kept of each sample traceback, e.g. 8000"
        )
        self._max_message_chars = _positive_int(
            max_message_chars, "max_message_chars", "the length kept of each message, e.g. 500"
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._groups: dict[_Key, _Group] = {}
        self._total = 0
        self._evicted = 0
        self._sequence = 0
        self._since = clock.time()

    @property
    def total(self) -> int:
        """Errors recorded since creation or the last reset, including those of evicted groups."""
        return self._total

    @property
    def evicted(self) -> int:
        """Groups dropped to make room for new ones."""
        return self._evicted

    def record(
        self,
        exc: BaseException,
        *,
        context: Mapping[str, Any] | None = None,
        origin: str | None = None,
    ) -> str:
        """Count ``exc`` in its group and return the group's fingerprint (put it in the log line)."""
        return self._record(exc, context, origin, caller_depth=2)

    def _record(
        self, exc: BaseException, context: Mapping[str, Any] | None, origin: str | None, *, caller_depth: int
    ) -> str:
        _check_arguments(exc, context, origin)
        # The one choke point of error groups: everything kept below is scrubbed with these secrets.
        secrets = (self._scrubber or get_secret_scrubber()).values
        raw = scrub_text(_message_of(exc), secrets)
        key = _Key(
            type=_type_name(type(exc)),
            origin=origin or _origin_of(exc, caller_depth + 1),
            message=normalise_message(raw, max_chars=self._max_message_chars),
        )
        safe_context = _safe_context(_merged_context(exc, context), secrets)
        now = self._clock.time()
        with self._lock:
            group = self._count_existing(key, now, safe_context)
        if group is None:
            # A new group: format the traceback (it reads source files) outside the lock.
            group = _Group(key, _truncate(raw, self._max_message_chars), self._traceback(exc, secrets), now)
            with self._lock:
                if self._count_existing(key, now, safe_context) is None:
                    self._insert(group, now, safe_context)
        return group.fingerprint

    def _traceback(self, exc: BaseException, secrets: tuple[str, ...]) -> str:
        return _bounded_traceback(exc, self._max_traceback_chars, secrets)

    def _count_existing(self, key: _Key, now: float, context: dict[str, Any]) -> _Group | None:
        group = self._groups.get(key)
        if group is None:
            return None
        self._total += 1
        self._sequence += 1
        group.seen(now, self._sequence, context)
        return group

    def _insert(self, group: _Group, now: float, context: dict[str, Any]) -> None:
        if len(self._groups) >= self._max_groups:
            victim = min(self._groups.values(), key=lambda g: (g.count, g.last_sequence))
            del self._groups[victim.key]
            self._evicted += 1
        self._groups[group.key] = group
        self._total += 1
        self._sequence += 1
        group.seen(now, self._sequence, context)

    def groups(self) -> list[ErrorGroup]:
        """Every group, most frequent first (then most recently seen)."""
        with self._lock:
            frozen = [(group.last_sequence, group.freeze()) for group in self._groups.values()]
        frozen.sort(key=lambda item: (-item[1].count, -item[0]))
        return [group for _, group in frozen]

    def get(self, fingerprint: str) -> ErrorGroup | None:
        """The group with this fingerprint, or None (never seen, evicted or reset)."""
        with self._lock:
            for group in self._groups.values():
                if group.fingerprint == fingerprint:
                    return group.freeze()
        return None

    def snapshot(self, limit: int | None = None) -> dict[str, Any]:
        """A JSON-ready view for the ops server: totals and the groups, most frequent first."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise buttress_errors.ValidationError(
                f"limit must be None (every group) or an int >= 1, got {limit!r}", field="limit"
            )
        groups = self.groups()
        with self._lock:
            total, evicted, since = self._total, self._evicted, self._since
        return {
            "since": since,
            "total": total,
            "group_count": len(groups),
            "max_groups": self._max_groups,
            "evicted": evicted,
            "groups": [group.to_dict() for group in groups[:limit]],
        }

    def reset(self) -> None:
        """Forget every group and counter."""
        with self._lock:
            self._groups = {}
            self._total = 0
            self._evicted = 0
            self._since = self._clock.time()

    def __repr__(self) -> str:
        return f"ErrorAggregator(groups={len(self._groups)}/{self._max_groups}, total={self._total})"


def _check_arguments(exc: object, context: object, origin: object) -> None:
    if not isinstance(exc, BaseException):
        raise buttress_errors.ValidationError(
            f"exc must be an exception instance, got {exc!r}; pass the caught exception (`except E as exc`)",
            field="exc",
        )
    if context is not None and not isinstance(context, Mapping):
        raise buttress_errors.ValidationError(
            f"context must be a mapping of names to values or None, got {type(context).__name__}",
            field="context",
        )
    if origin is not None and (not isinstance(origin, str) or not origin):
        raise buttress_errors.ValidationError(
            f"origin must be a non-empty str such as 'myapp.billing:42', or None to use the traceback, "
            f"got {origin!r}",
            field="origin",
        )


def _type_name(cls: type[BaseException]) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _message_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - reporting an error must not fail on a broken __str__
        return f"<unprintable {type(exc).__name__}>"


def _origin_of(exc: BaseException, caller_depth: int) -> str:
    """``module:line`` where ``exc`` was raised, or of the reporting frame when it never was."""
    tb = exc.__traceback__
    if tb is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        return f"{tb.tb_frame.f_globals.get('__name__', '?')}:{tb.tb_lineno}"
    frame = sys._getframe(caller_depth)
    return f"{frame.f_globals.get('__name__', '?')}:{frame.f_lineno}"


def _bounded_traceback(exc: BaseException, max_chars: int, secrets: tuple[str, ...] = ()) -> str:
    """The formatted traceback (with chained causes); the tail is kept, where the innermost frames are."""
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:  # noqa: BLE001 - reporting an error must not fail on a broken exception
        text = f"{_type_name(type(exc))}: {_message_of(exc)}\n"
    text = scrub_text(text, secrets)
    if len(text) <= max_chars:
        return text
    cut = len(text) - max_chars
    return f"... ({cut} characters cut)\n" + text[cut:]


def _merged_context(exc: BaseException, context: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ButtressError's own context, overridden by what the reporter passed."""
    own = exc.context if isinstance(exc, buttress_errors.ButtressError) else {}
    return {**own, **(context or {})}


def _safe_context(context: Mapping[str, Any], secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON-ready copy, secret-looking keys masked, text scrubbed, bounded in size and depth."""
    return _safe_mapping(context, 0, secrets)


def _safe_mapping(mapping: Mapping[Any, Any], depth: int, secrets: tuple[str, ...]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in itertools.islice(mapping.items(), _MAX_CONTEXT_ITEMS):
        name = str(key)
        masked = is_sensitive_key(name)
        safe[name] = buttress_errors.MASK if masked else _safe_value(value, depth + 1, secrets)
    return safe


def _safe_value(value: Any, depth: int, secrets: tuple[str, ...]) -> Any:
    if buttress_errors.is_pydantic_secret(value):
        return buttress_errors.MASK
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN or Infinity
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        text = value
    elif depth < _MAX_CONTEXT_DEPTH and isinstance(value, Mapping):
        return _safe_mapping(value, depth, secrets)
    elif depth < _MAX_CONTEXT_DEPTH and isinstance(value, list | tuple | set | frozenset):
        items = itertools.islice(value, _MAX_CONTEXT_ITEMS)
        return [_safe_value(item, depth + 1, secrets) for item in items]
    else:
        text = _text_of(value)
    return _truncate(scrub_text(text, secrets), _MAX_CONTEXT_TEXT)


def _text_of(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a context value must not break error reporting
        return f"<unprintable {type(value).__name__}>"


def _truncate(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _positive_int(value: object, field: str, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise buttress_errors.ValidationError(
            f"{field} must be an int >= 1 ({meaning}), got {value!r}", field=field
        )
    return value


def get_error_aggregator() -> ErrorAggregator:
    """The process-wide aggregator behind :func:`report_error` and the ops server: the default
    container's :class:`ErrorAggregator`."""
    return get_container().resolve(ErrorAggregator)


def report_error(exc: BaseException, /, **context: Any) -> str:
    """Record ``exc`` in the process-wide aggregator with ``context``; returns the group's fingerprint."""
    return get_error_aggregator()._record(exc, context, None, caller_depth=2)
