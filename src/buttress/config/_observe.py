"""The ``observe`` section of the settings: system sampling, its health thresholds and the profiler."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = ["ObserveSettings"]


class ObserveSettings(BaseModel):
    """System sampling, its health thresholds and the profiler, as the ops server runs them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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

    @field_validator("memory_fail_percent", "disk_fail_percent")
    @classmethod
    def _fail_not_below_warn(cls, fail: float, info: ValidationInfo) -> float:
        # A field validator, so the problem is reported under the variable to change.
        what = (info.field_name or "").removesuffix("_fail_percent")
        warn = info.data.get(f"{what}_warn_percent")
        if warn is not None and fail < warn:
            raise ValueError(
                f"{what}_fail_percent ({fail:g}) must not be below {what}_warn_percent ({warn:g})"
            )
        return fail
