"""The demo's world: five upstream domains that misbehave in known ways, the plan and the policies.

Kept apart from the runner so the story (what each domain does, which knobs differ from the defaults) is
readable in one place and the tests can name the same domains.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from buttress.config import HttpSettings
from buttress.demo._hosts import host_name
from buttress.testing import Fault, Latency, Upstream

__all__ = [
    "BREAKER_CONSECUTIVE_FAILURES",
    "CONCURRENCY",
    "DOMAINS",
    "LIMITED_BURST",
    "LIMITED_RATE",
    "RETRY_INITIAL_DELAY",
    "DomainSpec",
    "Planned",
    "demo_settings",
    "plan",
    "policy_notes",
    "start_upstream",
]

CONCURRENCY: Final = 50
"""Requests in flight at once, every pass."""
RETRY_INITIAL_DELAY: Final = 0.2
"""Seconds before the first retry (the default is 0.5 s): keeps the demo short, changes no outcome's kind."""
LIMITED_RATE: Final = "15/s"
"""Under the limited server's 20/s. The server admits a request only 50 ms after the last one it took (a
GCRA with burst 1), so a client at 25/s meets about one 429 in two and exhausts its retry budget; at
18/s the jitter of a busy event loop still costs a few 429s past the budget. At 15/s the limiter does
the waiting and the few 429s left are absorbed by Retry-After retries."""
LIMITED_BURST: Final = 1
BREAKER_CONSECUTIVE_FAILURES: Final = 10
"""The default is 5. A host failing 30% of the time meets 5 failures in a row about once per 130 attempts,
which opened flaky's breaker for 30 s in 4 of 10 runs of 500 requests; 10 in a row (p ~ 6e-6 per attempt)
still opens the dead host's breaker after its first 10 attempts."""


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """One fake upstream: its name, how it misbehaves, and that in words for the report."""

    name: str
    fault: Fault
    behaviour: str

    @property
    def host(self) -> str:
        """The host name the clients call it by (``flaky.demo.test``), in breakers, metrics and logs."""
        return host_name(self.name)


DOMAINS: Final = (
    DomainSpec("healthy", Fault(latency=Latency.uniform(0.005, 0.020)), "5-20 ms, always 200"),
    DomainSpec("flaky", Fault(errors={503: 0.3}, latency=0.010), "30% 503, ~10 ms"),
    DomainSpec("limited", Fault(rate_limit="20/s", retry_after=1), "20/s, then 429 + Retry-After: 1"),
    DomainSpec("dead", Fault(down=True), "connection refused"),
    DomainSpec("slow", Fault(latency=Latency.uniform(0.3, 0.9)), "0.3-0.9 s, always 200"),
)


@dataclass(frozen=True, slots=True)
class Planned:
    """One request of the batch: the domain it goes to and its own path, so its fate is its own."""

    domain: str
    path: str


def start_upstream(seed: int) -> Upstream:
    """The five domains, serving from a thread; the caller stops it."""
    upstream = Upstream(seed=seed)
    for spec in DOMAINS:
        upstream.add(spec.name, spec.fault)
    return upstream.start()


def plan(requests: int, seed: int) -> list[Planned]:
    """``requests`` GETs spread evenly over the domains, shuffled by ``seed``.

    Each request has a path of its own (``/items/<i>``): the upstream decides a fate per (seed, path,
    n-th call), so request ``i``'s first attempt meets the same fate in both passes, whatever the order.
    """
    names = [DOMAINS[index % len(DOMAINS)].name for index in range(requests)]
    random.Random(seed).shuffle(names)
    return [Planned(name, f"/items/{index}") for index, name in enumerate(names)]


def demo_settings() -> HttpSettings:
    """``HttpSettings()`` defaults but for three knobs: first retry delay, breaker trip, limited's limiter."""
    return HttpSettings.model_validate(
        {
            "default": {
                "retry": {"initial_delay": RETRY_INITIAL_DELAY},
                "breaker": {"consecutive_failures": BREAKER_CONSECUTIVE_FAILURES},
            },
            "policies": {
                "limited": {
                    "hosts": [host_name("limited")],
                    "limiter": {"rate": LIMITED_RATE, "burst": LIMITED_BURST},
                }
            },
        }
    )


def policy_notes(settings: HttpSettings) -> list[str]:
    """The policies in force, in words: what the demo kept from ``HttpSettings()``, then what it changed."""
    policy, stock = settings.default, HttpSettings().default
    retry, breaker = policy.retry, policy.breaker
    budget = "off" if retry.budget_ratio is None else f"{retry.budget_ratio:.0%} of calls"
    deadline = "no deadline" if policy.deadline is None else f"a {policy.deadline:g} s deadline per request"
    limited = settings.policies["limited"].limiter
    kept = (
        f"kept: {retry.attempts} attempts on {', '.join(map(str, retry.statuses))} and connection errors, "
        f"{retry.backoff} backoff with {retry.jitter} jitter, a retry budget of {budget}; the breaker stays "
        f"open {breaker.open_duration:g} s; {policy.bulkhead.max_concurrent} in flight per host; {deadline}"
    )
    changed = (
        f"changed: retry initial_delay {retry.initial_delay:g} s (default {stock.retry.initial_delay:g}); "
        f"breaker consecutive_failures {breaker.consecutive_failures} (default "
        f"{stock.breaker.consecutive_failures}, which a host failing 30% of the time often reaches); "
        f"limited host: limiter {'none' if limited.rate is None else limited.rate.to_text()}, "
        f"burst {limited.burst} (default: none)"
    )
    return [kept, changed]
