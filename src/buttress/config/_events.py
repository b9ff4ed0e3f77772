"""The ``events`` section of the settings: which transport carries the bus, and its bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EventsSettings"]


class EventsSettings(BaseModel):
    """The event bus: in-process, or shared by every process through Redis."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transport: Literal["memory", "redis"] = Field(
        default="memory",
        description="Where events travel: memory stays in this process, redis reaches every process.",
        examples=["redis"],
    )
    queue_size: int = Field(
        default=1000,
        ge=1,
        description="Events kept per subscriber; when full, its oldest event is dropped and counted.",
        examples=[5000],
    )
    prefix: str = Field(
        default="buttress:events",
        min_length=1,
        description="Prefix of the Redis channels, so several applications can share one Redis.",
        examples=["orders:events"],
    )
