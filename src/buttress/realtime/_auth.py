"""Who a realtime client is, and which topics it may follow.

Tokens are the ops server's credentials (:class:`buttress._bearer.AdminAuth`: the admin token or a JWT
signed with ``server.jwt_key``). They travel in the ``Sec-WebSocket-Protocol`` header as
``bearer.<token>`` next to ``buttress.v1``, or in a first ``auth`` message, never in the query string,
which ends up in access logs.

Authorisation is decided per subscription pattern. Without a hook, a client with a valid token may
follow anything and an anonymous one only what ``public`` covers; a pattern covers another when every
topic the second can match is matched by the first, so ``news.*`` does not let anyone in through
``news.**`` or ``**``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from buttress.errors import ValidationError
from buttress.events import compile_pattern

if TYPE_CHECKING:
    from buttress._bearer import AdminAuth

logger = logging.getLogger("buttress.realtime")

__all__ = [
    "Authorize",
    "Identity",
    "Policy",
    "bearer_from_subprotocols",
    "check_pattern",
    "covers",
]

PROTOCOL = "buttress.v1"
MAX_PATTERN_LENGTH = 256
MAX_SEGMENTS = 16
MAX_DEEP = 2  # '**' per pattern: each one multiplies the work of matching a topic
_BEARER = "bearer."


@dataclass(frozen=True, slots=True)
class Identity:
    """A client whose token passed: ``subject`` is the JWT's ``sub`` (None for the static admin token);
    ``expires`` the JWT's ``exp`` (None: the token does not expire)."""

    method: str
    subject: str | None = None
    expires: float | None = None
    claims: dict[str, Any] = field(default_factory=dict)


Authorize: TypeAlias = Callable[[Identity | None, str], bool | Awaitable[bool]]
"""``authorize(identity, pattern)``: may this client (None when anonymous) follow ``pattern``?"""


def check_pattern(pattern: object, field_name: str = "topics") -> str:
    """``pattern`` if it is a valid subscription pattern (``*`` one segment, ``**`` any number)."""
    try:
        text = compile_pattern(pattern).text
    except ValidationError as exc:
        raise ValidationError(f"{field_name}: {exc}", field=field_name) from None
    segments = text.split(".")
    if len(text) > MAX_PATTERN_LENGTH or len(segments) > MAX_SEGMENTS or segments.count("**") > MAX_DEEP:
        raise ValidationError(
            f"{field_name}: a pattern has at most {MAX_PATTERN_LENGTH} characters, {MAX_SEGMENTS} segments "
            f"and {MAX_DEEP} '**'; got {text[:40]!r}...",
            field=field_name,
        )
    return text


def covers(granted: str, requested: str) -> bool:
    """Whether every topic ``requested`` can match is matched by ``granted`` (both patterns)."""
    return _covers(tuple(granted.split(".")), tuple(requested.split(".")))


def _covers(granted: tuple[str, ...], requested: tuple[str, ...]) -> bool:
    if not granted:
        return not requested
    head, rest = granted[0], granted[1:]
    if head == "**":
        # ** takes any number of segments of the request, wildcards included
        return any(_covers(rest, requested[index:]) for index in range(len(requested) + 1))
    if not requested or requested[0] == "**":
        return False
    if head == "*" or head == requested[0]:
        return _covers(rest, requested[1:])
    return False


def bearer_from_subprotocols(offered: Iterable[str]) -> tuple[str | None, bool]:
    """The token in a ``bearer.<token>`` subprotocol, and whether ``buttress.v1`` was offered with it."""
    token = None
    versioned = False
    for protocol in offered:
        if protocol == PROTOCOL:
            versioned = True
        elif protocol.startswith(_BEARER):
            token = protocol[len(_BEARER) :] or None
    return token, versioned


class Policy:
    """The checks of one endpoint: verifying tokens and deciding subscriptions."""

    def __init__(
        self, auth: AdminAuth, *, public: Iterable[str] = (), authorize: Authorize | None = None
    ) -> None:
        self.auth = auth
        self.public = tuple(check_pattern(pattern, "public") for pattern in public)
        self._authorize = authorize

    def identify(self, token: str) -> Identity:
        """The :class:`Identity` behind ``token``; :class:`AdminAuthError` when it is missing or invalid."""
        from buttress._bearer import AdminAuthError  # noqa: PLC0415 - PyJWT (the [server] extra), only here

        if not self.auth.configured:
            raise AdminAuthError(
                "this server checks no tokens: set BUTTRESS_SECURITY__ADMIN_TOKEN or BUTTRESS_SERVER__JWT_KEY"
            )
        found = self.auth.verify(token)
        expires = found.claims.get("exp") if found.method == "jwt" else None
        return Identity(
            found.method, found.subject, float(expires) if expires is not None else None, found.claims
        )

    async def allows(self, identity: Identity | None, pattern: str) -> bool:
        if self._authorize is not None:
            try:
                verdict = self._authorize(identity, pattern)
                if inspect.isawaitable(verdict):
                    verdict = await verdict
            except Exception:  # a broken hook refuses, loudly, rather than killing the connection
                logger.exception(
                    "realtime: the authorize hook failed on %r; the subscription is refused", pattern
                )
                return False
            return bool(verdict)
        if identity is not None:
            return True
        return any(covers(granted, pattern) for granted in self.public)
