"""The ``realtime`` section of the settings: where the topic log lives and how connections are bounded."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RealtimeSettings"]


class RealtimeSettings(BaseModel):
    """WebSocket and SSE fan-out of bus events: the log clients resume from, and each connection's bounds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    log: Literal["auto", "memory", "redis"] = Field(
        default="auto",
        description=(
            "Where recorded events are kept for resume: redis (a stream every process reads and replays), "
            "memory (this process only), auto (redis when BUTTRESS_REDIS_URL is set)."
        ),
        examples=["redis"],
    )
    prefix: str = Field(
        default="buttress:realtime",
        min_length=1,
        description="Prefix of the Redis keys of the topic log, so several applications can share one Redis.",
        examples=["orders:realtime"],
    )
    record: tuple[str, ...] = Field(
        default=("**",),
        description="Topic patterns of the bus recorded into the log (only recorded topics reach clients).",
        examples=[["jobs.**", "orders.*"]],
    )
    retention: int = Field(
        default=10_000,
        ge=1,
        description="Newest events kept for resume; a client that fell further behind is told to reset.",
        examples=[100_000],
    )
    queue_size: int = Field(
        default=1000,
        ge=1,
        description="Messages waiting per connection; past it the connection overflows (see overflow).",
        examples=[5000],
    )
    overflow: Literal["gap", "close"] = Field(
        default="gap",
        description=(
            "When a connection's queue is full: gap (drop new messages, then send one gap marker with "
            "the id to resume from) or close (close it with code 1013, try again later)."
        ),
        examples=["close"],
    )
    batch_window: float = Field(
        default=0.002,
        ge=0,
        le=1,
        description=(
            "Seconds the server gathers new events before handing them to connections, so a burst goes out "
            "as one frame per client; 0 sends each at once."
        ),
        examples=[0.0],
    )
    stall_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a connection may leave messages unsent before it is closed as stuck.",
        examples=[10.0],
    )
    heartbeat: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between pings sent to each client (WebSocket ping message, SSE comment).",
        examples=[30.0],
    )
    idle_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds without a message from a WebSocket client (pongs included) before it is closed.",
        examples=[120.0],
    )
    max_connections: int = Field(
        default=10_000,
        ge=1,
        description="Open connections per process; past it new ones are refused with code 1013.",
        examples=[50_000],
    )
    max_connections_per_user: int = Field(
        default=50,
        ge=1,
        description="Open connections per authenticated subject per process.",
        examples=[10],
    )
