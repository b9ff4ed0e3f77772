"""The ``security`` section of the settings: the service's secrets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from buttress.config._fields import SECRET_EXAMPLE

__all__ = ["SecuritySettings"]


class SecuritySettings(BaseModel):
    """Secrets; always ``SecretStr`` so they never reach a log line, a repr or the CLI."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that signs tokens and cookies; long and random.",
        examples=[SECRET_EXAMPLE],
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the ops server's admin endpoints; unset disables them.",
        examples=[SECRET_EXAMPLE],
    )
