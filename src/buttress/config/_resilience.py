"""The ``resilience`` section of the settings: the state store and the named pipelines.

A named pipeline is configured entirely from the environment, one variable per knob::

    BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ATTEMPTS=5
    BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__LIMITER__RATE=60/minute

and fetched in code with ``buttress.resilience.get_pipeline("spotify")``. Knobs left out keep the defaults
below, which are also what ``get_pipeline(name, defaults=True)`` gives a name that is not configured.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    field_validator,
)

from buttress.config._imports import ExceptionPath
from buttress.errors import ValidationError
from buttress.rate import Rate

__all__ = [
    "BreakerSettings",
    "BulkheadSettings",
    "LimiterSettings",
    "PipelineSettings",
    "RateSetting",
    "ResilienceSettings",
    "RetrySettings",
]

DEFAULT_RETRY_ON = (
    "builtins.ConnectionError",
    "builtins.TimeoutError",
    "buttress.errors.RateLimited",
    "buttress.errors.DeadlineExceeded",
)


def _parse_rate(value: object) -> Rate:
    if isinstance(value, Rate):
        return value
    try:
        return Rate.parse(value)  # type: ignore[arg-type]  # the parser explains a value that is not text
    except ValidationError as exc:  # pydantic reports ValueErrors, with the parser's explanation
        raise ValueError(exc.message) from None


RateSetting = Annotated[
    Rate,
    PlainValidator(_parse_rate, json_schema_input_type=str),
    PlainSerializer(Rate.to_text, return_type=str),
]
"""A rate read from text such as ``60/minute`` and stored parsed; a dump writes it back as that text,
so a dumped model validates again (a named HTTP policy inherits the default policy that way)."""


class RetrySettings(BaseModel):
    """Retry of a named pipeline: bounded attempts under a total deadline, with jittered backoff."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(
        default=3, ge=1, description="Attempts in total, the first call included.", examples=[5]
    )
    deadline: float | None = Field(
        default=30.0,
        gt=0,
        description="Seconds for all attempts together; a retry that cannot finish in time is not started.",
        examples=[10.0],
    )
    backoff: Literal["constant", "linear", "exponential"] = Field(
        default="exponential", description="How the delay between attempts grows.", examples=["linear"]
    )
    initial_delay: float = Field(
        default=0.5, ge=0, description="Seconds before the first retry.", examples=[0.2]
    )
    max_delay: float = Field(
        default=10.0,
        ge=0,
        description="Cap on one delay, Retry-After included.",
        examples=[5.0],
    )
    jitter: Literal["none", "full", "equal", "decorrelated"] = Field(
        default="full",
        description="Randomisation of each delay, so clients do not retry in step.",
        examples=["equal"],
    )
    on: tuple[ExceptionPath, ...] = Field(
        default=DEFAULT_RETRY_ON,
        description="Exceptions that are retried, as import paths (module.Class).",
        examples=[["builtins.ConnectionError", "httpx.TransportError"]],
    )
    budget_ratio: float | None = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Retries allowed as a fraction of recent calls (the retry budget); unset turns it off.",
        examples=[0.1],
    )

    @field_validator("on")
    @classmethod
    def _at_least_one(cls, on: tuple[str, ...]) -> tuple[str, ...]:
        # Not min_length: that also reports "0 items" when an item is invalid, a second problem for one.
        if not on:
            raise ValueError("at least one exception class, such as builtins.ConnectionError")
        return on

    @field_validator("max_delay")
    @classmethod
    def _delays_in_order(cls, max_delay: float, info: ValidationInfo) -> float:
        # A field validator, so the problem is reported under the knob to change.
        initial_delay = info.data.get("initial_delay")
        if initial_delay is not None and max_delay < initial_delay:
            raise ValueError(f"max_delay ({max_delay:g}) must not be below initial_delay ({initial_delay:g})")
        return max_delay


class BreakerSettings(BaseModel):
    """Circuit breaker of a named pipeline (one per pipeline, or one per host for the HTTP client)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        default=True, description="Whether the pipeline has a circuit breaker.", examples=[False]
    )
    consecutive_failures: int | None = Field(
        default=5,
        ge=1,
        description="Open after this many failures in a row; unset turns the rule off.",
        examples=[3],
    )
    failure_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Open when this fraction of the calls in the window failed; unset turns the rule off.",
        examples=[0.5],
    )
    slow_call_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Open when this fraction of the calls in the window were slow; unset turns the rule off.",
        examples=[0.8],
    )
    slow_call_duration: float = Field(
        default=60.0, gt=0, description="Seconds after which a call counts as slow.", examples=[5.0]
    )
    window: float = Field(
        default=100,
        gt=0,
        description="Sliding window of the rate rules: a number of calls, or seconds with window_type=time.",
        examples=[60],
    )
    window_type: Literal["count", "time"] = Field(
        default="count", description="Whether the window counts calls or seconds.", examples=["time"]
    )
    minimum_calls: int = Field(
        default=10, ge=1, description="Calls the window needs before a rate rule may open it.", examples=[20]
    )
    open_duration: float = Field(
        default=30.0,
        gt=0,
        description="Seconds the breaker stays open after its first trip.",
        examples=[60.0],
    )
    open_duration_max: float = Field(
        default=300.0,
        gt=0,
        description="Repeated trips double the open time up to this; equal to open_duration keeps it fixed.",
        examples=[600.0],
    )
    half_open_probes: int = Field(
        default=1,
        ge=1,
        description="Trial calls per half-open period, finished or not; that many successes close it.",
        examples=[3],
    )

    @field_validator("open_duration_max")
    @classmethod
    def _max_not_below_open(cls, open_duration_max: float, info: ValidationInfo) -> float:
        open_duration = info.data.get("open_duration")
        if open_duration is not None and open_duration_max < open_duration:
            raise ValueError(
                f"open_duration_max ({open_duration_max:g}) must not be below "
                f"open_duration ({open_duration:g})"
            )
        return open_duration_max


class LimiterSettings(BaseModel):
    """Rate limiter of a named pipeline; off unless a rate is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: RateSetting | None = Field(
        default=None,
        description="Calls allowed per period, like 60/minute or 10/s; unset means no limiter.",
        examples=["60/minute"],
    )
    burst: int = Field(
        default=1, ge=1, description="Calls that may go at once on a full bucket.", examples=[10]
    )
    max_wait: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a call may wait for its turn before RateLimited is raised.",
        examples=[2.0],
    )


class BulkheadSettings(BaseModel):
    """Concurrency cap of a named pipeline; off unless max_concurrent is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_concurrent: int | None = Field(
        default=None, ge=1, description="Calls running at once; unset means no bulkhead.", examples=[20]
    )
    max_queued: int = Field(
        default=0, ge=0, description="Calls allowed to wait for a free slot.", examples=[50]
    )
    max_wait: float = Field(
        default=1.0, ge=0, description="Seconds a queued call waits before BulkheadFull.", examples=[0.5]
    )


class PipelineSettings(BaseModel):
    """One named pipeline: which strategies it has and how each is tuned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retry: RetrySettings = Field(default_factory=RetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    limiter: LimiterSettings = Field(default_factory=LimiterSettings)
    bulkhead: BulkheadSettings = Field(default_factory=BulkheadSettings)
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds one attempt may take; unset means no per-attempt timeout.",
        examples=[5.0],
    )


class ResilienceSettings(BaseModel):
    """Where breakers, limiters and retry budgets keep state, and the named pipelines."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store: Literal["memory", "redis"] = Field(
        default="memory",
        description="Where shared state lives: memory is per process, redis is shared by every process.",
        examples=["redis"],
    )
    redis_policy: Literal["local", "open", "closed"] = Field(
        default="local",
        description=(
            "While Redis is unreachable: local keeps per-process state, open admits all, closed rejects all."
        ),
        examples=["closed"],
    )
    prefix: str = Field(
        default="buttress",
        min_length=1,
        pattern=r"^[^\s{}]+$",
        description="Prefix of the Redis keys, so several services can share one Redis.",
        examples=["orders"],
    )
    pipelines: dict[str, PipelineSettings] = Field(
        default_factory=dict,
        description=(
            "Named pipelines, usually one variable per knob: "
            "BUTTRESS_RESILIENCE__PIPELINES__<NAME>__RETRY__ATTEMPTS=5."
        ),
        examples=[{"spotify": {"retry": {"attempts": 5}, "limiter": {"rate": "60/minute", "burst": 10}}}],
    )
