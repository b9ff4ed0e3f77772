"""The ``logging`` section of the settings: level and output style."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["LoggingSettings"]


class LoggingSettings(BaseModel):
    """How :func:`buttress.observe.logging.configure_logging_from_settings` sets up logs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO",
        description="Lowest level written, for buttress and stdlib loggers alike (any case).",
        examples=["DEBUG"],
    )
    format: Literal["console", "json"] = Field(
        default="console",
        description="Output style: console for people at a terminal, json for one JSON object per line.",
        examples=["json"],
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value
