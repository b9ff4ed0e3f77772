"""Per-host policies: which settings a host gets, and the breaker, limiter, bulkhead and budget it owns.

A host is keyed by its authority as a client sees it: ``api.example.com`` (default port) or
``127.0.0.1:8080``. Its policy is the named one whose host pattern matches first (exact names before
globs, longer globs before shorter ones), else ``default``. Each host gets its own strategies, built on
first use and shared by every client that uses the same :class:`HttpPolicies` (by default the
process-wide one, so the sync and the async client agree about a host's health).
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.http._telemetry import HostTelemetry
from buttress.http._validate import check_host

if TYPE_CHECKING:
    import httpx

    from buttress.config import HttpPolicySettings, HttpSettings
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry
    from buttress.resilience import Backoff, Bulkhead, CircuitBreaker, RateLimiter, RedisState, RetryBudget

__all__ = ["HostPolicy", "HostStats", "HttpPolicies"]

DEFAULT_POLICY: Final = "default"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def authority(url: httpx.URL) -> str:
    """``host`` for a default port, else ``host:port`` (what policies match and metrics label)."""
    port = url.port
    host = url.host
    if port is None or port == _DEFAULT_PORTS.get(url.scheme):
        return host
    return f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class HostStats:
    """What the client did with one host: requests by status class, retries, local refusals, state."""

    host: str
    policy: str
    requests: int
    """Attempts that reached the wire (each retry is one more)."""
    status_classes: dict[str, int]
    """``2xx``, ``4xx``, ``5xx``, ... and ``error`` (no answer: refused, reset, timed out)."""
    retries: int
    rejected: dict[str, int]
    """Requests refused before the wire: ``breaker``, ``limiter``, ``bulkhead``, ``deadline``."""
    breaker_state: str | None
    breaker_openings: int
    limiter_waits: int
    limiter_wait_seconds: float
    in_flight: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HostPolicy:
    """One host's settings in the shape the transport reads, and the strategies that keep its state."""

    __slots__ = (
        "attempts",
        "backoff",
        "breaker",
        "breaker_statuses",
        "budget",
        "bulkhead",
        "bulkhead_wait",
        "deadline",
        "host",
        "limiter",
        "limiter_wait",
        "longest_timeout",
        "max_retry_after",
        "name",
        "retry_methods",
        "retry_statuses",
        "telemetry",
        "timeouts",
    )

    def __init__(
        self,
        host: str,
        name: str,
        settings: HttpPolicySettings,
        *,
        label: str,
        store: RedisState | Literal["memory"],
        clock: Clock,
        metrics: MetricsRegistry | None,
        events: EventBus | None,
    ) -> None:
        from buttress.resilience import (  # noqa: PLC0415 - strategies load with the first host policy
            Backoff,
            Bulkhead,
            RateLimiter,
            RetryBudget,
            build_breaker,
        )

        self.host = host
        self.name = name
        key = f"http:{host}"
        retry = settings.retry
        self.attempts = retry.attempts
        self.retry_statuses = frozenset(retry.statuses)
        self.retry_methods = frozenset(retry.methods)
        self.max_retry_after = retry.max_retry_after
        self.backoff: Backoff = Backoff(
            kind=retry.backoff, initial=retry.initial_delay, max_delay=retry.max_delay, jitter=retry.jitter
        )
        self.deadline = settings.deadline
        timeout = settings.timeout
        self.timeouts = {
            "connect": timeout.connect,
            "read": timeout.read,
            "write": timeout.write,
            "pool": timeout.pool,
        }
        self.longest_timeout = max(self.timeouts.values())
        self.budget: RetryBudget | None = (
            RetryBudget(
                ratio=retry.budget_ratio, name=key, store=store, clock=clock, metrics=metrics, events=events
            )
            if retry.budget_ratio is not None
            else None
        )
        self.breaker: CircuitBreaker | None = build_breaker(
            key, settings.breaker, store=store, clock=clock, metrics=metrics, events=events
        )
        self.breaker_statuses = frozenset(settings.breaker_statuses)
        lim = settings.limiter
        self.limiter: RateLimiter | None = (
            RateLimiter(
                lim.rate, burst=lim.burst, name=key, store=store, clock=clock, metrics=metrics, events=events
            )
            if lim.rate is not None
            else None
        )
        self.limiter_wait = lim.max_wait
        bulk = settings.bulkhead
        self.bulkhead: Bulkhead | None = (
            Bulkhead(
                bulk.max_concurrent,
                max_queued=bulk.max_queued,
                max_wait=bulk.max_wait,
                name=key,
                clock=clock,
                metrics=metrics,
                events=events,
            )
            if bulk.max_concurrent is not None
            else None
        )
        self.bulkhead_wait = bulk.max_wait
        self.telemetry = HostTelemetry(host, label, metrics=metrics, events=events)
        self.telemetry.on_collect(self._export_state)

    def __repr__(self) -> str:
        return f"HostPolicy({self.host!r}, policy={self.name!r})"

    def may_retry(self, request: httpx.Request, idempotency_header: str) -> bool:
        """Whether a request that reached the server may be sent again."""
        chosen = request.extensions.get("buttress.retry")
        if chosen is not None:
            return bool(chosen)
        return request.method in self.retry_methods or idempotency_header in request.headers

    def stats(self) -> HostStats:
        telemetry = self.telemetry
        breaker = self.breaker
        return HostStats(
            host=self.host,
            policy=self.name,
            requests=telemetry.requests(),
            status_classes=telemetry.status_classes(),
            retries=telemetry.retries(),
            rejected=telemetry.rejections(),
            breaker_state=None if breaker is None else breaker.snapshot().state,
            breaker_openings=0 if breaker is None else breaker.openings,
            limiter_waits=telemetry.limiter_waits(),
            limiter_wait_seconds=telemetry.limiter_wait_seconds(),
            in_flight=0 if self.bulkhead is None else self.bulkhead.snapshot().active,
        )

    def _export_state(self, registry: MetricsRegistry) -> None:
        if self.bulkhead is not None:
            self.telemetry.set_in_flight(registry, self.bulkhead.snapshot().active)


class HttpPolicies:
    """The policy table from :class:`~buttress.config.HttpSettings` and each host's live strategies."""

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        store: RedisState | Literal["memory"] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        if settings is None:
            from buttress.config import get_settings  # noqa: PLC0415 - settings are optional

            settings = get_settings().http
        if store is None:
            from buttress.resilience import get_resilience_store  # noqa: PLC0415 - the process store only when none is given

            store = get_resilience_store() or "memory"
        self.settings = settings
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.events = events
        self.idempotency_header = settings.idempotency_header.lower()
        self._exact: dict[str, str] = {}
        self._globs: list[tuple[str, str]] = []
        for name, policy in settings.policies.items():
            for pattern in policy.hosts:
                if any(char in pattern for char in "*?["):
                    self._globs.append((pattern, name))
                else:
                    self._exact[pattern] = name
        self._globs.sort(key=lambda item: -len(item[0].replace("*", "")))
        self._hosts: dict[str, HostPolicy] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpPolicies({len(self._hosts)} hosts, policies={sorted(self.settings.policies)})"

    def policy_name(self, host: str) -> str:
        """The name of the policy that claims ``host`` (``name`` or ``name:port``)."""
        bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        for candidate in (host, bare) if bare != host else (host,):
            name = self._exact.get(candidate)
            if name is not None:
                return name
        for pattern, name in self._globs:
            if fnmatch.fnmatchcase(host, pattern) or fnmatch.fnmatchcase(bare, pattern):
                return name
        return DEFAULT_POLICY

    def for_host(self, host: str) -> HostPolicy:
        """The live policy of ``host``, built on first use (once, even when threads race)."""
        policy = self._hosts.get(host)
        if policy is not None:
            return policy
        with self._lock:
            policy = self._hosts.get(host)
            if policy is None:
                name = self.policy_name(host)
                settings = self.settings.default if name == DEFAULT_POLICY else self.settings.policies[name]
                label = host if len(self._hosts) < self.settings.max_hosts else "other"
                policy = HostPolicy(
                    host,
                    name,
                    settings,
                    label=label,
                    store=self.store,
                    clock=self.clock,
                    metrics=self.metrics,
                    events=self.events,
                )
                self._hosts[host] = policy
        return policy

    def for_url(self, url: httpx.URL) -> HostPolicy:
        """The live policy of ``url``'s host; a host new to the table is checked first (ValidationError)."""
        host = authority(url)
        policy = self._hosts.get(host)
        if policy is None:
            check_host(url)  # once per host: the table only holds hosts that passed
            policy = self.for_host(host)
        return policy

    def hosts(self) -> list[str]:
        """Every host used so far."""
        return sorted(self._hosts)

    def stats(self, host: str | None = None) -> list[HostStats]:
        """What was done per host (one host, or all of them)."""
        hosts = [host] if host is not None else self.hosts()
        return [self._hosts[name].stats() for name in hosts if name in self._hosts]
