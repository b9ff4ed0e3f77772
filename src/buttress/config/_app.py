"""The ``app`` section of the settings: who this service is."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AppSettings"]


class AppSettings(BaseModel):
    """Who this service is; shown in logs, metrics and the ops server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        default="buttress",
        min_length=1,
        description="Service name, shown in logs, metrics and the ops server.",
        examples=["orders-api"],
    )
    environment: Literal["development", "test", "staging", "production"] = Field(
        default="development",
        description="Where the service runs, reported in logs and health output.",
        examples=["production"],
    )
