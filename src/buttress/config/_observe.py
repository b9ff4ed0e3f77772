"""The ``observe`` section of the settings: system sampling, its health thresholds and the profiler."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ObserveSettings"]


class ObserveSettings(BaseModel):
    """System sampling, its health thresholds and the profiler, as the ops server runs them."""

    model_config = ConfigDict(frozen=True)

    sampler_interval: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between two readings of CPU, memory, disk and file descriptors.",
        examples=[5.0],
    )
    disk_paths: list[str] = Field(
        default_factory=lambda: ["/"],
        min_length=1,
        description="Filesystems whose usage is sampled and checked, as a JSON list of paths.",
        examples=[["/", "/var/lib/app"]],
    )
    memory_warn_percent: float = Field(
        default=90.0,
        ge=0,
        le=100,
        description="Host memory used (%) at which the system health check warns.",
        examples=[85.0],
    )
    memory_fail_percent: float = Field(
        default=95.0,
        ge=0,
        le=100,
        description="Host memory used (%) at which the system health check fails.",
        examples=[98.0],
    )
    disk_warn_percent: float = Field(
        default=90.0,
        ge=0,
        le=100,
        description="Disk used (%) at which the system health check warns.",
        examples=[80.0],
    )
    disk_fail_percent: float = Field(
        default=95.0,
        ge=0,
        le=100,
        description="Disk used (%) at which the system health check fails.",
        examples=[97.0],
    )
    profiler_enabled: bool = Field(
        default=False,
        description="Start the profiler with the ops server; it can also be switched at run time.",
        examples=[True],
    )

    @model_validator(mode="after")
    def _fail_not_below_warn(self) -> ObserveSettings:
        for what in ("memory", "disk"):
            warn, fail = getattr(self, f"{what}_warn_percent"), getattr(self, f"{what}_fail_percent")
            if fail < warn:
                raise ValueError(
                    f"{what}_fail_percent ({fail:g}) must not be below {what}_warn_percent ({warn:g})"
                )
        return self
