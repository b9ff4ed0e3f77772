"""The ``http`` section of the settings: the connection pool and the per-host policies.

The ``default`` policy applies to every host no named policy claims. A named policy lists the hosts it
claims (exact names or globs such as ``*.spotify.com``; add ``:port`` to claim one port only) and
changes only the knobs it sets; every other knob comes from ``default``::

    BUTTRESS_HTTP__DEFAULT__RETRY__ATTEMPTS=4
    BUTTRESS_HTTP__POLICIES__SPOTIFY__HOSTS=api.spotify.com,accounts.spotify.com
    BUTTRESS_HTTP__POLICIES__SPOTIFY__LIMITER__RATE=10/s
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import NoDecode

from buttress.config._fields import env_var_name
from buttress.config._resilience import BreakerSettings, LimiterSettings

__all__ = [
    "HttpBulkheadSettings",
    "HttpHostPolicySettings",
    "HttpPolicySettings",
    "HttpRetrySettings",
    "HttpSettings",
    "HttpTimeoutSettings",
]

IDEMPOTENT_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE")
_HOST_PATTERN = re.compile(r"^[a-z0-9*?.\-\[\]]+(:\d{1,5})?$")


class HttpRetrySettings(BaseModel):
    """When and how often a request is sent again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(
        default=3, ge=1, description="Attempts in total, the first one included.", examples=[5]
    )
    statuses: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(429, 500, 502, 503, 504),
        description="Response statuses that are retried.",
        examples=[[429, 503]],
    )
    methods: Annotated[tuple[str, ...], NoDecode] = Field(
        default=IDEMPOTENT_METHODS,
        description=(
            "Methods retried on their own; others only with an Idempotency-Key header or retry=True. "
            "A connection that never opened is retried for every method."
        ),
        examples=[["GET", "HEAD"]],
    )
    backoff: Literal["constant", "linear", "exponential"] = Field(
        default="exponential", description="How the delay between attempts grows.", examples=["constant"]
    )
    initial_delay: float = Field(
        default=0.5, ge=0, description="Seconds before the first retry.", examples=[1.0]
    )
    max_delay: float = Field(
        default=10.0, ge=0, description="Cap on one computed backoff delay.", examples=[4.0]
    )
    jitter: Literal["none", "full", "equal", "decorrelated"] = Field(
        default="full", description="Randomisation of each delay.", examples=["equal"]
    )
    max_retry_after: float = Field(
        default=60.0,
        ge=0,
        description="A Retry-After longer than this is not waited for: the response is returned as it is.",
        examples=[30.0],
    )
    budget_ratio: float | None = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Retries allowed per host as a fraction of its recent requests; unset turns it off.",
        examples=[0.1],
    )

    @field_validator("methods", mode="before")
    @classmethod
    def _split_methods(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("statuses", mode="before")
    @classmethod
    def _split_statuses(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(method.strip().upper() for method in value)

    @field_validator("statuses")
    @classmethod
    def _statuses_are_errors(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for status in value:
            if not 400 <= status <= 599:
                raise ValueError(f"{status} is not an error status; give statuses between 400 and 599")
        return value


class HttpTimeoutSettings(BaseModel):
    """Seconds each phase of one attempt may take (httpx's four timeouts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connect: float = Field(default=30.0, gt=0, description="Opening a connection.", examples=[5.0])
    read: float = Field(
        default=30.0, gt=0, description="Waiting for each chunk of the response.", examples=[60.0]
    )
    write: float = Field(
        default=30.0, gt=0, description="Sending each chunk of the request.", examples=[10.0]
    )
    pool: float = Field(
        default=30.0, gt=0, description="Waiting for a free pooled connection.", examples=[5.0]
    )


class HttpBulkheadSettings(BaseModel):
    """Requests in flight to one host at once: the per-host connection limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_concurrent: int | None = Field(
        default=20, ge=1, description="Requests in flight to one host; unset means no cap.", examples=[5]
    )
    max_queued: int = Field(
        default=1000, ge=0, description="Requests allowed to wait for a free slot.", examples=[100]
    )
    max_wait: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a request waits for a slot before BulkheadFull.",
        examples=[5.0],
    )


class HttpPolicySettings(BaseModel):
    """How requests to one group of hosts are sent: retry, breaker, limiter, bulkhead and deadline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline: float | None = Field(
        default=30.0,
        gt=0,
        description="Seconds for the whole request, retries and waits included; unset means none.",
        examples=[10.0],
    )
    timeout: HttpTimeoutSettings = Field(default_factory=HttpTimeoutSettings)
    retry: HttpRetrySettings = Field(default_factory=HttpRetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    breaker_statuses: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(500, 502, 503, 504),
        description="Statuses the host's breaker counts as failures (transport errors always count).",
        examples=[[502, 503, 504]],
    )
    limiter: LimiterSettings = Field(default_factory=LimiterSettings)
    bulkhead: HttpBulkheadSettings = Field(default_factory=HttpBulkheadSettings)

    @field_validator("breaker_statuses", mode="before")
    @classmethod
    def _split_breaker_statuses(cls, value: Any) -> Any:
        return _split(value)


class HttpHostPolicySettings(HttpPolicySettings):
    """A named policy: the hosts it claims, and the knobs it changes from the default policy."""

    hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        min_length=1,
        description="Hosts this policy claims: names or globs (*.example.com), optionally with :port.",
        examples=[["api.spotify.com", "*.spotify.com"]],
    )

    @field_validator("hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("hosts")
    @classmethod
    def _host_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        patterns = tuple(host.strip().lower() for host in value)
        for pattern in patterns:
            if not _HOST_PATTERN.match(pattern):
                raise ValueError(
                    f"{pattern!r} is not a host pattern; use a name or glob with an optional port, "
                    "such as api.example.com, *.example.com or 127.0.0.1:8080"
                )
        return patterns


class HttpSettings(BaseModel):
    """The pooled HTTP client: connection pool, defaults, and policies per host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_connections: int = Field(
        default=100, ge=1, description="Open connections in the pool, all hosts together.", examples=[200]
    )
    max_keepalive: int = Field(
        default=100, ge=0, description="Idle connections kept open for reuse.", examples=[50]
    )
    keepalive_expiry: float = Field(
        default=5.0, ge=0, description="Seconds an idle connection is kept.", examples=[30.0]
    )
    raise_for_status: bool = Field(
        default=True,
        description="HttpClient raises UpstreamStatusError on 4xx/5xx (per call: raise_for_status=).",
        examples=[False],
    )
    user_agent: str | None = Field(
        default=None, description="User-Agent header; unset sends buttress/<version>.", examples=["myapp/1.2"]
    )
    idempotency_header: str = Field(
        default="Idempotency-Key",
        min_length=1,
        description="A request carrying this header may be retried whatever its method.",
        examples=["X-Idempotency-Key"],
    )
    max_hosts: int = Field(
        default=200,
        ge=1,
        description="Hosts given their own metric labels; later ones are counted under host=other.",
        examples=[1000],
    )
    default: HttpPolicySettings = Field(default_factory=HttpPolicySettings)
    policies: dict[str, HttpHostPolicySettings] = Field(
        default_factory=dict,
        description="Named policies claiming hosts: BUTTRESS_HTTP__POLICIES__<NAME>__HOSTS=api.example.com.",
        examples=[{"spotify": {"hosts": ["api.spotify.com"], "limiter": {"rate": "10/s"}}}],
    )

    @model_validator(mode="before")
    @classmethod
    def _inherit_default(cls, data: Any) -> Any:
        """A named policy starts from ``default`` and changes only the knobs it sets."""
        if not isinstance(data, dict) or not isinstance(data.get("policies"), dict):
            return data
        base = data.get("default", {})
        if isinstance(base, BaseModel):
            base = base.model_dump(exclude_unset=True)
        if not isinstance(base, dict):
            return data
        policies = {}
        for name, policy in data["policies"].items():
            own = policy.model_dump(exclude_unset=True) if isinstance(policy, BaseModel) else policy
            policies[name] = _deep_merge(base, own) if isinstance(own, dict) else own
        return {**data, "policies": policies}

    @model_validator(mode="after")
    def _each_host_claimed_once(self) -> HttpSettings:
        claimed: dict[str, str] = {}
        for name, policy in self.policies.items():
            for pattern in policy.hosts:
                if pattern in claimed:
                    message = f"host {pattern!r} is claimed by both {claimed[pattern]!r} and {name!r}"
                    variable = env_var_name(("http", "policies", name, "hosts"))  # the second claim
                    raise PydanticCustomError(
                        "host_claimed_twice",
                        "{message}",
                        {"message": message, "problems": [(variable, pattern, message)]},
                    )
                claimed[pattern] = name
        return self


def _split(value: Any) -> Any:
    """An environment variable's ``a,b`` or JSON ``["a", "b"]`` as a list; other values pass through."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value  # reported by pydantic as "not a valid tuple"
    return [part.strip() for part in value.split(",") if part.strip()]


def _deep_merge(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
