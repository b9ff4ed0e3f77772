"""The decisions both HTTP transports share: which policy, how long, retry or not, what to record.

Kept apart from the transports so the sync and async loops read the same and differ only in awaiting.
"""

from __future__ import annotations

import math
import random
import time
from typing import TYPE_CHECKING, Final

import httpx

from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import BulkheadFull, ButtressError, CircuitOpen, DeadlineExceeded, RateLimited
from buttress.http._policies import HostPolicy, HttpPolicies
from buttress.http._retry_after import parse_retry_after
from buttress.http._validate import check_request

if TYPE_CHECKING:
    from buttress.config import HttpSettings

__all__ = [
    "ATTEMPTS",
    "DEADLINE",
    "REFUSALS",
    "RETRY",
    "STREAM",
    "Core",
    "attempts_of",
    "limits",
    "public_url",
]

ATTEMPTS: Final = "buttress.attempts"
DEADLINE: Final = "buttress.deadline"
RETRY: Final = "buttress.retry"
STREAM: Final = "buttress.stream"
REFUSALS: Final = (CircuitOpen, RateLimited, BulkheadFull, DeadlineExceeded)
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_RETRYABLE: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_PHASES: Final = ("connect", "read", "write", "pool")


class BadStatus(Exception):
    """What the breaker records for an answer in ``breaker_statuses``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def public_url(url: httpx.URL) -> str:
    """The URL without credentials, query or fragment: safe for errors, logs and events."""
    port = "" if url.port is None else f":{url.port}"
    return f"{url.scheme}://{url.host}{port}{url.path}"


def attempts_of(outcome: httpx.Response | BaseException) -> int | None:
    """How many attempts a response or an error took (None when no buttress transport handled it)."""
    if isinstance(outcome, httpx.Response):
        value = outcome.extensions.get(ATTEMPTS)
    else:
        value = getattr(outcome, "buttress_attempts", None)
    return value if isinstance(value, int) else None


def limits(settings: HttpSettings) -> httpx.Limits:
    """The connection pool's limits from settings."""
    return httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive,
        keepalive_expiry=settings.keepalive_expiry,
    )


def resolve_policies(
    policies: HttpPolicies | None, settings: HttpSettings | None, clock: Clock | None
) -> HttpPolicies:
    """The policies a client or transport was given; else its own from ``settings``; else the process's."""
    if policies is not None:
        return policies
    if settings is not None:
        return HttpPolicies(settings, clock=clock or SYSTEM_CLOCK)
    from buttress.http._defaults import get_http_policies  # noqa: PLC0415 - avoids an import cycle

    return get_http_policies()


def _reason(outcome: httpx.Response | BaseException) -> str:
    if isinstance(outcome, httpx.Response):
        return str(outcome.status_code)
    return type(outcome).__name__


class Core:
    """One transport's policies, clock and random source, and the decisions of its request loop."""

    def __init__(
        self, policies: HttpPolicies | None, settings: HttpSettings | None, clock: Clock | None
    ) -> None:
        self.policies = policies = resolve_policies(policies, settings, clock)
        self.clock = clock = clock or policies.clock
        self.now = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self.idempotency_header = policies.idempotency_header
        self.rng = random.Random()
        self.header_names: set[bytes] = set()  # header names this transport has checked already

    # -- before the first attempt ---------------------------------------------------------------------

    def check(self, request: httpx.Request) -> dict[str, float]:
        """The timeouts the caller set, once the request is known to be no mistake (else ValidationError).

        The first thing a transport does with a request: no policy has run yet.
        """
        return check_request(request, self.header_names)

    def policy(self, request: httpx.Request) -> HostPolicy:
        """The host's policy (a host new to the table is checked first)."""
        return self.policies.for_url(request.url)

    def cutoff(self, policy: HostPolicy, request: httpx.Request) -> float:
        """When the request's deadline passes (monotonic time), or infinity without one."""
        deadline = request.extensions.get(DEADLINE, policy.deadline)
        return math.inf if deadline is None else self.now() + deadline

    def may_retry(self, policy: HostPolicy, request: httpx.Request) -> bool:
        """Whether a request that reached the server may be sent again."""
        if policy.attempts < 2 or not isinstance(request.stream, httpx.ByteStream):
            return False  # one attempt only, or a generator body, which cannot be sent twice
        return policy.may_retry(request, self.idempotency_header)

    # -- each attempt ------------------------------------------------------------------------------------

    def wait_limit(self, configured: float, cutoff: float) -> float:
        """How long a limiter or bulkhead may keep this attempt waiting."""
        left = cutoff - self.now()
        return configured if configured < left else max(left, 0.0)

    def timeouts(self, policy: HostPolicy, asked: dict[str, float], remaining: float) -> dict[str, float]:
        """httpx's four timeouts for one attempt: the policy's, the caller's or the time left, the least."""
        if not asked and remaining >= policy.longest_timeout:
            return policy.timeouts  # the common case: nothing tighter than the policy (httpx only reads it)
        result = {}
        for phase in _PHASES:
            value = policy.timeouts[phase]
            mine = asked.get(phase)
            if mine is not None and mine < value:
                value = mine
            result[phase] = remaining if remaining < value else value
        return result

    def late(self, policy: HostPolicy, request: httpx.Request) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{request.method} {public_url(request.url)} ran out of time: its deadline passed",
            context={"host": policy.host},
        )

    def cut_by_deadline(self, error: BaseException, cutoff: float) -> bool:
        """A timeout that fired because the deadline, not the policy's timeout, ran out."""
        return isinstance(error, httpx.TimeoutException) and self.now() >= cutoff - 0.001

    def verdict(self, policy: HostPolicy, response: httpx.Response) -> BadStatus | None:
        """Count the answer; the failure to record on the breaker, or None for a success."""
        status = response.status_code
        policy.telemetry.count_status(status)
        return BadStatus(status) if status in policy.breaker_statuses else None

    def finished(self, policy: HostPolicy, start: float) -> None:
        """An answer whose body is already complete: give its slot back and record its duration now."""
        if policy.bulkhead is not None:
            policy.bulkhead.release()
        policy.telemetry.observe_duration(self.now() - start)

    # -- after an attempt ----------------------------------------------------------------------------------

    def response_delay(
        self, policy: HostPolicy, response: httpx.Response, attempt: int, previous: float, cutoff: float
    ) -> float | None:
        """The wait before sending again after this answer, or None to return it."""
        if response.status_code not in policy.retry_statuses:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.time())
        if retry_after is not None and retry_after > policy.max_retry_after:
            return None
        return self._delay(policy, attempt, previous, cutoff, retry_after)

    def error_delay(  # noqa: PLR0917 - the loop's state, passed as the response_delay twin does
        self,
        policy: HostPolicy,
        error: httpx.TransportError,
        attempt: int,
        previous: float,
        cutoff: float,
        may_retry: bool,
    ) -> float | None:
        """The wait before sending again after this error, or None to raise it."""
        if not isinstance(error, _RETRYABLE):
            return None
        if not may_retry and not (policy.attempts > 1 and isinstance(error, _NEVER_SENT)):
            return None
        return self._delay(policy, attempt, previous, cutoff, None)

    def _delay(
        self, policy: HostPolicy, attempt: int, previous: float, cutoff: float, retry_after: float | None
    ) -> float | None:
        if attempt >= policy.attempts:
            return None
        delay = policy.backoff.delay(attempt, previous, self.rng)
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        return None if self.now() + delay >= cutoff else delay

    def retrying(
        self,
        policy: HostPolicy,
        request: httpx.Request,
        outcome: httpx.Response | BaseException,
        attempt: int,
        delay: float,
    ) -> None:
        policy.telemetry.count_retry()
        policy.telemetry.event(
            "retry",
            method=request.method,
            url=public_url(request.url),
            attempt=attempt,
            reason=_reason(outcome),
            delay=delay,
        )

    def give_up(
        self, policy: HostPolicy, request: httpx.Request, error: BaseException, attempts: int
    ) -> None:
        """Announce a request that failed for good, and tell its error how many attempts it took."""
        url = public_url(request.url)
        policy.telemetry.event(
            "failed", method=request.method, url=url, attempts=attempts, reason=_reason(error)
        )
        self.mark(policy, request, error, attempts)

    def mark(self, policy: HostPolicy, request: httpx.Request, error: BaseException, attempts: int) -> None:
        """Facts for the caller: context on our errors, an attribute and a note on httpx's."""
        url = public_url(request.url)
        if isinstance(error, ButtressError):
            error.context.update(host=policy.host, method=request.method, url=url, attempts=attempts)
        else:
            error.buttress_attempts = attempts  # type: ignore[attr-defined]
            error.add_note(f"buttress: {request.method} {url} failed after {attempts} attempt(s)")

    def refused(
        self,
        policy: HostPolicy,
        request: httpx.Request,
        refusal: ButtressError,
        last: httpx.Response | None,
        attempt: int,
    ) -> httpx.Response:
        """A local refusal: return the previous answer if there was one, else raise the refusal."""
        reason = (
            "breaker"
            if isinstance(refusal, CircuitOpen)
            else "limiter"
            if isinstance(refusal, RateLimited)
            else "bulkhead"
            if isinstance(refusal, BulkheadFull)
            else "deadline"
        )
        policy.telemetry.count_rejection(reason)
        if last is not None:
            last.extensions[ATTEMPTS] = attempt - 1
            return last
        self.mark(policy, request, refusal, attempt)
        raise refusal
