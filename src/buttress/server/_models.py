"""Response and request models: they make the OpenAPI document say exactly what each endpoint returns.

The snapshots come from the observe modules as plain dicts; these models describe (and, on the way out,
validate) them, so a schema-driven client or schemathesis can hold the server to its word. Where an observe
module already defines the shape (a dataclass or TypedDict), the model uses that type, so a field is declared
in one place only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from buttress.observe.errors import ErrorGroup
from buttress.observe.profiler import FunctionStats
from buttress.observe.system import DiskSample

__all__ = [
    "ConfigEntry",
    "ErrorsSnapshot",
    "HealthCheckEntry",
    "HealthDocument",
    "InfoResponse",
    "LevelChange",
    "LoggerLevel",
    "LoggersResponse",
    "MetricFamilySnapshot",
    "ProfilerSnapshot",
    "ProfilerState",
    "SystemSnapshot",
]

HealthStatusName = Literal["pass", "warn", "fail"]
LevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET"]


class _Alias(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class HealthCheckEntry(_Alias):
    """One check's result, as draft-inadarei-api-health-check shapes it, plus duration and critical."""

    component_id: str | None = Field(default=None, alias="componentId")
    component_type: str = Field(alias="componentType")
    observed_value: Any = Field(default=None, alias="observedValue")
    observed_unit: str | None = Field(default=None, alias="observedUnit")
    status: HealthStatusName
    time: str = Field(description="RFC 3339 time the check finished.")
    duration: str = Field(description="How long the check ran, e.g. 0.012345s.")
    critical: bool = Field(description="A failing critical check fails the whole report.")
    output: str | None = Field(default=None, description="Why the check warns or fails.")


class HealthDocument(_Alias):
    """An ``application/health+json`` document; ``checks`` maps ``name[:measurement]`` to results."""

    status: HealthStatusName
    version: str | None = None
    release_id: str | None = Field(default=None, alias="releaseId")
    service_id: str | None = Field(default=None, alias="serviceId")
    description: str | None = None
    output: str | None = Field(default=None, description="The failing and warning checks, by name.")
    checks: dict[str, list[HealthCheckEntry]]


class InfoResponse(BaseModel):
    """Who and what is running, since when."""

    name: str = Field(description="The service's name (BUTTRESS_APP__NAME).")
    environment: str
    version: str = Field(description="The installed buttress version.")
    python: str = Field(description="Python version, e.g. 3.11.7.")
    implementation: str = Field(description="Python implementation, e.g. CPython.")
    hostname: str
    pid: int
    started_at: str = Field(description="RFC 3339 time the server started.")
    start_time: float = Field(description="Start time in Unix seconds.")
    uptime_seconds: float


class WindowModel(BaseModel):
    """Sliding-window statistics of a histogram series (seconds for latencies).

    Mirrors ``buttress.observe.metrics.WindowStats``, a ``typing.TypedDict`` that pydantic cannot read on
    Python 3.11.
    """

    window_seconds: float
    count: int
    sum: float
    mean: float | None
    min: float | None
    max: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class SeriesSnapshot(BaseModel):
    """One label set of a metric: ``value`` for counters and gauges; count, sum and window for histograms."""

    labels: dict[str, str]
    value: float | None = None
    count: int | None = None
    sum: float | None = None
    window: WindowModel | None = None


class MetricFamilySnapshot(BaseModel):
    """A declared metric and its series."""

    type: Literal["counter", "gauge", "histogram"]
    description: str
    labels: list[str]
    series: list[SeriesSnapshot]


class ErrorsSnapshot(BaseModel):
    """Error aggregation: totals and the groups, most frequent first."""

    since: float
    total: int
    group_count: int
    max_groups: int
    evicted: int
    details: bool = Field(description="Whether tracebacks and context are included.")
    groups: list[ErrorGroup]


class SampleModel(BaseModel):
    """One reading of the process and the host."""

    time: str
    timestamp: float
    process_cpu_percent: float
    system_cpu_percent: float
    process_rss_bytes: int
    memory_percent: float
    disks: list[DiskSample]
    open_fds: int | None


class ThresholdsModel(BaseModel):
    memory_warn: float | None
    memory_fail: float | None
    disk_warn: float | None
    disk_fail: float | None
    cpu_warn: float | None
    fds_warn: int | None


class SystemSnapshot(BaseModel):
    """The system sampler: its configuration and latest reading (null before the first one)."""

    running: bool
    interval: float
    paths: list[str]
    thresholds: ThresholdsModel
    latest: SampleModel | None


class ProfilerSnapshot(BaseModel):
    """The profiler's state and both rankings (by total time and by p99)."""

    enabled: bool
    window: int
    names: int
    dropped: int
    by_total: list[FunctionStats]
    by_p99: list[FunctionStats]


class ProfilerState(BaseModel):
    """What a profiler switch did."""

    enabled: bool
    names: int


class ConfigEntry(BaseModel):
    """One effective setting; secrets and URL passwords are masked."""

    variable: str
    value: str | int | float | bool | None
    source: Literal["default", "env", ".env", "init"]
    secret: bool


class LoggerLevel(BaseModel):
    """A logger's own level (NOTSET: inherits) and the level it really uses."""

    name: str
    level: str = Field(description="DEBUG, INFO, ... or NOTSET (inherits); custom levels as 'Level 5'.")
    effective_level: str


class LoggersResponse(BaseModel):
    """Every stdlib logger created so far, root first, and the levels that can be set."""

    levels: list[LevelName]
    loggers: list[LoggerLevel]


class LevelChange(BaseModel):
    """A new level for one logger; NOTSET makes it inherit its parent's again. Any case is accepted."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"level": "DEBUG"}]})

    level: LevelName

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value
