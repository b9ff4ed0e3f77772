"""The summariser's knobs, checked once: a bad value is a ``ValidationError`` naming the field and the fix."""

from __future__ import annotations

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from buttress.errors import ValidationError

__all__ = ["SummarizerConfig"]


class SummarizerConfig(BaseModel):
    """What one run needs; the defaults run a real run against a small model's usual limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    llm_url: str | None = Field(None, examples=["https://llm.example.com/v1/summarize"])
    """The LLM API's summarise endpoint; required unless the run is a dry run."""
    api_key: SecretStr | None = Field(None, examples=["<from SUMMARIZER_API_KEY>"])
    """Sent as a bearer token; a SecretStr so it never reaches a log line or an error message."""
    model: str = Field("fake-small", min_length=1)
    tokens_per_minute: int = Field(10_000, ge=1)
    """The provider's limit: prompt tokens plus the completion reserved for each call."""
    max_prompt_tokens: int = Field(2_000, ge=1)
    """A page longer than this is cut, so one call never costs more than the limiter's bucket holds."""
    summary_tokens: int = Field(100, ge=1)
    """The completion reserved per call (``max_tokens`` in a real API), counted against the limit."""
    prompt_price: float = Field(0.0005, ge=0)
    """Dollars per 1,000 prompt tokens."""
    completion_price: float = Field(0.0015, ge=0)
    """Dollars per 1,000 completion tokens."""
    batch_size: int = Field(50, ge=1, le=10_000)
    """Summaries written per transaction."""
    table: str = Field("summaries", pattern=r"^[a-z_][a-z0-9_]{0,62}$", examples=["summaries"])
    redis_url: str | None = Field(
        None,
        pattern=r"^(rediss?|unix|redis\+sentinel|redis\+cluster)://",
        examples=["redis://127.0.0.1:6379/12"],
    )
    """Set: the token bucket lives in Redis, so every process of the app shares one limit."""
    database_url: str | None = Field(None, examples=["postgresql://app@db.example.com/app"])
    """Unset: ``BUTTRESS_DATABASE_URL``, else the SQLite file ``buttress.db`` in the working directory."""

    @classmethod
    def build(cls, **values: object) -> SummarizerConfig:
        """Validate ``values``; the first problem becomes a ``ValidationError`` naming its field."""
        try:
            config = cls.model_validate(values)
        except pydantic.ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(part) for part in problem["loc"]) or "config"
            known = cls.model_fields.get(field)
            if known is None:
                fix = f"the fields are {', '.join(cls.model_fields)}"
            else:
                fix = f"e.g. {field}={(known.examples or [known.default])[0]!r}"
            raise ValidationError(f"{field}: {problem['msg']}; {fix}", field=field) from None
        per_call = config.max_prompt_tokens + config.summary_tokens
        if per_call > config.tokens_per_minute:
            raise ValidationError(
                f"max_prompt_tokens + summary_tokens ({per_call}) exceeds tokens_per_minute "
                f"({config.tokens_per_minute}): such a call could never pass the limiter; lower "
                "max_prompt_tokens or raise tokens_per_minute",
                field="max_prompt_tokens",
            )
        return config
