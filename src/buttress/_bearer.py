"""Bearer credentials (the admin token or a JWT), checked by the ops server and by realtime connections.

Two credentials are accepted in ``Authorization: Bearer <credential>``:

- ``security.admin_token``, compared in constant time (:func:`hmac.compare_digest`), for a single operator
  or a script;
- a JWT verified with ``server.jwt_key`` and ``server.jwt_algorithm`` (only that algorithm: a token cannot
  pick ``none`` or switch HS/RS), with ``aud`` and ``iss`` checked when configured. ``exp`` is required.
  Expiry and ``nbf`` are compared with the injected clock, not PyJWT's, so tests move time instead of
  sleeping.

Failures are 401 problems with ``WWW-Authenticate: Bearer`` (RFC 6750), saying whether the credential was
missing, invalid or expired, never why a signature failed. A key that cannot work (too short, a PEM key for
an HMAC algorithm, RS256 without ``cryptography``) is a :class:`~buttress.errors.ConfigError` when the app
is built, not a 401 for everyone at run time.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass, field
from typing import Any

import jwt
from pydantic import SecretStr

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import Settings, env_var_name
from buttress.errors import MASK, ButtressError, ConfigError, ConfigProblem

__all__ = ["AdminAuth", "AdminAuthError", "AdminIdentity"]

_REALM = "buttress"


class AdminAuthError(ButtressError):
    """Admin credentials were missing, wrong or expired (HTTP 401 with ``WWW-Authenticate: Bearer``)."""

    default_code = "unauthorized"
    default_status = 401
    title = "Unauthorized"

    def __init__(self, message: str, *, bearer_error: str | None = None) -> None:
        super().__init__(message)
        self.bearer_error = bearer_error

    @property
    def response_headers(self) -> dict[str, str]:
        challenge = f'Bearer realm="{_REALM}"'
        if self.bearer_error is not None:
            challenge += f', error="{self.bearer_error}"'
        return {"WWW-Authenticate": challenge}


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    """Who passed the admin check: ``method`` is ``token`` or ``jwt``; ``claims`` are the JWT's."""

    method: str
    subject: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)


def _secret(value: SecretStr | str | None) -> str | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value or None


class AdminAuth:
    """Checks admin bearer credentials; :attr:`configured` is False when neither method is set up."""

    def __init__(
        self,
        *,
        token: SecretStr | str | None = None,
        jwt_key: SecretStr | str | None = None,
        jwt_algorithm: str = "HS256",
        jwt_audience: str | None = None,
        jwt_issuer: str | None = None,
        leeway: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        token_text = _secret(token)
        self._token = token_text.encode() if token_text is not None else None
        self._jwt_key: Any = None
        self._algorithm = jwt_algorithm
        self._audience = jwt_audience
        self._issuer = jwt_issuer
        self._leeway = leeway
        self._clock = clock
        key = _secret(jwt_key)
        if key is not None:
            self._jwt_key = _prepared_key(key, jwt_algorithm)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> AdminAuth:
        server = settings.server
        return cls(
            token=settings.security.admin_token,
            jwt_key=server.jwt_key,
            jwt_algorithm=server.jwt_algorithm,
            jwt_audience=server.jwt_audience,
            jwt_issuer=server.jwt_issuer,
            clock=clock,
        )

    @property
    def configured(self) -> bool:
        return self._token is not None or self._jwt_key is not None

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("token", self._token), ("jwt", self._jwt_key)) if on is not None)

    def verify(self, credential: str | None) -> AdminIdentity:
        """The identity behind ``credential``, or :class:`AdminAuthError`."""
        if not credential:
            raise AdminAuthError("admin credentials are missing: send 'Authorization: Bearer <token or JWT>'")
        if self._token is not None and hmac.compare_digest(credential.encode(), self._token):
            return AdminIdentity("token")
        if self._jwt_key is not None and credential.count(".") == 2:
            return self._verify_jwt(credential)
        raise AdminAuthError("the admin credential is not valid", bearer_error="invalid_token")

    def _verify_jwt(self, credential: str) -> AdminIdentity:
        try:
            claims: dict[str, Any] = jwt.decode(
                credential,
                self._jwt_key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp"], "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise AdminAuthError("the admin JWT is not valid", bearer_error="invalid_token") from None
        now = self._clock.time()
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or not _is_number(expires):
            raise AdminAuthError("the admin JWT's exp is not a number", bearer_error="invalid_token")
        if now >= expires + self._leeway:
            raise AdminAuthError("the admin JWT has expired", bearer_error="invalid_token")
        not_before = claims.get("nbf")
        if not_before is not None and (not _is_number(not_before) or now + self._leeway < not_before):
            raise AdminAuthError("the admin JWT is not valid yet", bearer_error="invalid_token")
        subject = claims.get("sub")
        return AdminIdentity("jwt", subject if isinstance(subject, str) else None, claims)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _prepared_key(key: str, algorithm: str) -> Any:
    variable = env_var_name(("server", "jwt_key"))
    if algorithm not in jwt.algorithms.get_default_algorithms():
        raise ConfigError(
            "The admin JWT algorithm is not available",
            problems=[
                ConfigProblem(
                    env_var_name(("server", "jwt_algorithm")),
                    algorithm,
                    "an algorithm PyJWT can verify here; RS256 and ES256 need: pip install 'pyjwt[crypto]'",
                )
            ],
        )
    implementation = jwt.get_algorithm_by_name(algorithm)
    try:
        prepared = implementation.prepare_key(key)
    except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
        problem = f"a key for {algorithm}: {exc}"
    else:
        # PyJWT only warns about a short key on each decode; refuse it once, here.
        too_short = implementation.check_key_length(prepared)
        if too_short is None:
            return prepared
        problem = f"a longer key: {too_short}"
    raise ConfigError("The admin JWT key cannot be used", problems=[ConfigProblem(variable, MASK, problem)])
