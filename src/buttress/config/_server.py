"""The ``server`` section of the settings: where the ops server listens and how it checks admin JWTs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from buttress.config._fields import SECRET_EXAMPLE

__all__ = ["JwtAlgorithm", "ServerSettings"]

JwtAlgorithm = Literal["HS256", "HS384", "HS512", "RS256", "ES256"]
_HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


class ServerSettings(BaseModel):
    """The ops server (``buttress serve``, :func:`buttress.server.create_app`) and its admin JWTs.

    Admin endpoints accept ``security.admin_token`` or a JWT verified with these settings; with neither
    configured they do not exist at all.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address `buttress serve` listens on; loopback by default, 0.0.0.0 for every interface.",
        examples=["0.0.0.0"],  # noqa: S104 -- an example, not a default
    )
    port: int = Field(
        default=8765,
        ge=0,
        le=65535,
        description="TCP port `buttress serve` listens on (0 picks a free one).",
        examples=[9000],
    )
    jwt_algorithm: JwtAlgorithm = Field(
        default="HS256",
        description="Algorithm admin JWTs must be signed with; RS256 and ES256 need the cryptography "
        "package.",
        examples=["HS512"],
    )
    jwt_key: SecretStr | None = Field(
        default=None,
        description="Key that verifies admin JWTs: a shared secret for HS256/384/512, a PEM public key for "
        "RS256/ES256; unset disables JWT admin auth.",
        examples=[SECRET_EXAMPLE],
    )
    jwt_audience: str | None = Field(
        default=None,
        description="Audience (aud) admin JWTs must name; unset refuses tokens that carry one.",
        examples=["buttress-ops"],
    )
    jwt_issuer: str | None = Field(
        default=None,
        description="Issuer (iss) admin JWTs must name; unset accepts any issuer.",
        examples=["https://auth.example.com/"],
    )
    expose_details: bool = Field(
        default=False,
        description="Put exception context and tracebacks in error responses; for development only, "
        "never where clients are untrusted.",
        examples=[True],
    )

    @field_validator("jwt_key")
    @classmethod
    def _hmac_key_long_enough(cls, key: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # PyJWT only warns about short HMAC keys; a guessable admin key is a configuration error.
        minimum = _HMAC_KEY_BYTES.get(info.data.get("jwt_algorithm", ""))
        if key is not None and minimum is not None and len(key.get_secret_value().encode()) < minimum:
            raise PydanticCustomError(
                "jwt_key_too_short",
                "a key of at least {minimum} bytes for {algorithm} (RFC 7518 3.2); generate one with "
                'python -c "import secrets; print(secrets.token_urlsafe(48))"',
                {"minimum": minimum, "algorithm": info.data["jwt_algorithm"]},
            )
        return key
