"""The per-host policies as httpx transports: any ``httpx.Client(transport=...)`` gets them.

One request, in order: the host's breaker admits it (or ``CircuitOpen``), its limiter spaces it (waiting
at most ``limiter.max_wait`` and never past the deadline, or ``RateLimited``), its bulkhead gives it a
slot (the per-host connection cap, or ``BulkheadFull``), then the inner transport sends it with every
timeout cut to the time left before the deadline. The answer is judged:

- a status in ``retry.statuses``, or a transport error (refused, reset, timed out), is retried when the
  request may be sent again: its method is idempotent, it carries an Idempotency-Key, or the caller
  opted in (``extensions={"buttress.retry": True}``). A connection that never opened is retried for any
  method: the server cannot have seen the request. A generator request body cannot be replayed, so such
  requests are never retried;
- the wait is the backoff delay, or the server's ``Retry-After`` (seconds or HTTP-date) when longer. A
  Retry-After above ``retry.max_retry_after``, a wait that would end past the deadline, or an exhausted
  retry budget ends the retries: the last answer is returned (or the last error raised) at once;
- the breaker counts statuses in ``breaker_statuses`` and transport errors as failures; nothing else
  does: a request body that raises (a generator of the caller's) gives its permit back unrecorded, and a
  caller's mistake (a bad URL, host, port, method, header or option) is a ``ValidationError`` raised before
  the breaker is even asked, so the request is neither sent nor recorded.

Retried answers are read and closed, so their connections go back to the pool. When a later attempt is
refused locally (the breaker opened meanwhile), the previous answer is returned rather than the refusal:
the caller learns what the server said. The returned response carries ``extensions["buttress.attempts"]``.

Why not :class:`~buttress.resilience.Retry`: it decides on exceptions, while HTTP retries decide on
answers (status, Retry-After), need the request's method and body, and must close what they discard.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import httpx

from buttress.clock import Clock
from buttress.http._body import AsyncBody, SyncBody
from buttress.http._core import ATTEMPTS, REFUSALS, STREAM, Core, limits

if TYPE_CHECKING:
    from buttress.config import HttpSettings
    from buttress.http._policies import HostPolicy, HttpPolicies
    from buttress.resilience import CircuitBreaker, Permit

__all__ = ["AsyncResilientTransport", "ResilientTransport"]


class ResilientTransport(httpx.BaseTransport):
    """An httpx transport that applies the per-host policies around another transport.

    ``httpx.Client(transport=ResilientTransport())`` is enough: the inner transport defaults to an
    ``httpx.HTTPTransport`` with the pool limits from settings, and the policies to the process-wide ones.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        policies: HttpPolicies | None = None,
        settings: HttpSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._core = core = Core(policies, settings, clock)
        self.policies = core.policies
        self._inner = (
            transport if transport is not None else httpx.HTTPTransport(limits=limits(core.policies.settings))
        )

    def __repr__(self) -> str:
        return f"ResilientTransport({self._inner!r}, {self.policies!r})"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core = self._core
        asked = core.check(request)  # a caller's mistake is a ValidationError here, before any policy
        policy = core.policy(request)
        cutoff = core.cutoff(policy, request)
        may_retry = core.may_retry(policy, request)
        budget = policy.budget
        if may_retry and budget is not None:
            budget.record_call()
        attempt, previous = 1, 0.0
        last: httpx.Response | None = None
        while True:
            outcome: httpx.Response | BaseException
            try:
                response = self._attempt(policy, request, asked, cutoff)
            except REFUSALS as refusal:
                return core.refused(policy, request, refusal, last, attempt)
            except httpx.TransportError as error:
                delay = core.error_delay(policy, error, attempt, previous, cutoff, may_retry)
                if delay is None or (budget is not None and not budget.try_spend()):
                    core.give_up(policy, request, error, attempt)
                    raise
                outcome = error
            else:
                delay = (
                    core.response_delay(policy, response, attempt, previous, cutoff) if may_retry else None
                )
                if delay is None or (budget is not None and not budget.try_spend()):
                    response.extensions[ATTEMPTS] = attempt
                    return response
                response.read()
                response.close()
                last = outcome = response
            core.retrying(policy, request, outcome, attempt, delay)
            core.clock.sleep(delay)
            attempt, previous = attempt + 1, delay

    def _admit(self, policy: HostPolicy, cutoff: float) -> Permit | None:
        """Breaker, then limiter, then bulkhead; a refusal further on gives the breaker permit back."""
        core = self._core
        breaker = policy.breaker
        permit = breaker.acquire() if breaker is not None else None
        try:
            limiter = policy.limiter
            if limiter is not None:
                waited = limiter.acquire(timeout=core.wait_limit(policy.limiter_wait, cutoff))
                if waited:
                    policy.telemetry.count_limiter_wait(waited)
            if policy.bulkhead is not None:
                policy.bulkhead.acquire(timeout=core.wait_limit(policy.bulkhead_wait, cutoff))
        except BaseException:
            if permit is not None:
                breaker.release(permit)  # type: ignore[union-attr]
            raise
        return permit

    def _attempt(
        self, policy: HostPolicy, request: httpx.Request, asked: dict[str, float], cutoff: float
    ) -> httpx.Response:
        core = self._core
        now = core.now
        permit = self._admit(policy, cutoff)
        breaker, bulkhead = policy.breaker, policy.bulkhead
        start = now()
        if start >= cutoff:
            _give_back(policy, permit)
            raise core.late(policy, request)
        request.extensions["timeout"] = core.timeouts(policy, asked, cutoff - start)
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as error:  # the host's failure; anything else is not
            if bulkhead is not None:
                bulkhead.release()
            duration = now() - start
            policy.telemetry.count_error()
            policy.telemetry.observe_duration(duration)
            if permit is not None:
                breaker.record_failure(permit, error, duration)  # type: ignore[union-attr]
            if core.cut_by_deadline(error, cutoff):
                raise core.late(policy, request) from error
            raise
        except BaseException:
            _give_back(policy, permit)
            raise
        failure = core.verdict(policy, response)
        if permit is not None:
            _record(breaker, permit, failure, now() - start)  # type: ignore[arg-type]
        if response.is_closed:  # read in full by the inner transport: nobody will close it again
            core.finished(policy, start)
            return response
        response.stream = SyncBody(
            response.stream,
            release=bulkhead.release if bulkhead is not None else None,
            telemetry=policy.telemetry,
            start=start,
            now=now,
            cutoff=math.inf if request.extensions.get(STREAM) else cutoff,
        )
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """:class:`ResilientTransport` for ``httpx.AsyncClient``: waits are awaited, never blocking the loop."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        policies: HttpPolicies | None = None,
        settings: HttpSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._core = core = Core(policies, settings, clock)
        self.policies = core.policies
        self._inner = (
            transport
            if transport is not None
            else httpx.AsyncHTTPTransport(limits=limits(core.policies.settings))
        )

    def __repr__(self) -> str:
        return f"AsyncResilientTransport({self._inner!r}, {self.policies!r})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core = self._core
        asked = core.check(request)  # a caller's mistake is a ValidationError here, before any policy
        policy = core.policy(request)
        cutoff = core.cutoff(policy, request)
        may_retry = core.may_retry(policy, request)
        budget = policy.budget
        if may_retry and budget is not None:
            await budget.arecord_call()
        attempt, previous = 1, 0.0
        last: httpx.Response | None = None
        while True:
            outcome: httpx.Response | BaseException
            try:
                response = await self._attempt(policy, request, asked, cutoff)
            except REFUSALS as refusal:
                return core.refused(policy, request, refusal, last, attempt)
            except httpx.TransportError as error:
                delay = core.error_delay(policy, error, attempt, previous, cutoff, may_retry)
                if delay is None or not await _spend(policy):
                    core.give_up(policy, request, error, attempt)
                    raise
                outcome = error
            else:
                delay = (
                    core.response_delay(policy, response, attempt, previous, cutoff) if may_retry else None
                )
                if delay is None or not await _spend(policy):
                    response.extensions[ATTEMPTS] = attempt
                    return response
                await response.aread()
                await response.aclose()
                last = outcome = response
            core.retrying(policy, request, outcome, attempt, delay)
            await core.clock.asleep(delay)
            attempt, previous = attempt + 1, delay

    async def _admit(self, policy: HostPolicy, cutoff: float) -> Permit | None:
        core = self._core
        breaker = policy.breaker
        permit = None
        if breaker is not None:
            permit = breaker.acquire_fast()  # answered without I/O by a memory store
            if permit is None:
                permit = await breaker.aacquire()
        try:
            limiter = policy.limiter
            if limiter is not None:
                waited = await limiter.aacquire(timeout=core.wait_limit(policy.limiter_wait, cutoff))
                if waited:
                    policy.telemetry.count_limiter_wait(waited)
            if policy.bulkhead is not None:
                await policy.bulkhead.aacquire(timeout=core.wait_limit(policy.bulkhead_wait, cutoff))
        except BaseException:
            if permit is not None:
                await breaker.arelease(permit)  # type: ignore[union-attr]
            raise
        return permit

    async def _attempt(
        self, policy: HostPolicy, request: httpx.Request, asked: dict[str, float], cutoff: float
    ) -> httpx.Response:
        core = self._core
        now = core.now
        permit = await self._admit(policy, cutoff)
        breaker, bulkhead = policy.breaker, policy.bulkhead
        start = now()
        if start >= cutoff:
            await _agive_back(policy, permit)
            raise core.late(policy, request)
        request.extensions["timeout"] = core.timeouts(policy, asked, cutoff - start)
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError as error:  # the host's failure; anything else is not
            if bulkhead is not None:
                bulkhead.release()
            duration = now() - start
            policy.telemetry.count_error()
            policy.telemetry.observe_duration(duration)
            if permit is not None:
                await _arecord(breaker, permit, error, duration)  # type: ignore[arg-type]
            if core.cut_by_deadline(error, cutoff):
                raise core.late(policy, request) from error
            raise
        except BaseException:
            await _agive_back(policy, permit)
            raise
        failure = core.verdict(policy, response)
        if permit is not None:
            await _arecord(breaker, permit, failure, now() - start)  # type: ignore[arg-type]
        if response.is_closed:  # read in full by the inner transport: nobody will close it again
            core.finished(policy, start)
            return response
        response.stream = AsyncBody(
            response.stream,
            release=bulkhead.release if bulkhead is not None else None,
            telemetry=policy.telemetry,
            start=start,
            now=now,
            cutoff=math.inf if request.extensions.get(STREAM) else cutoff,
        )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _record(breaker: CircuitBreaker, permit: Permit, failure: BaseException | None, duration: float) -> None:
    if failure is None:
        breaker.record_success(permit, duration)
    else:
        breaker.record_failure(permit, failure, duration)


def _give_back(policy: HostPolicy, permit: Permit | None) -> None:
    """The attempt will not be sent: free its bulkhead slot and its breaker permit, recording nothing."""
    if policy.bulkhead is not None:
        policy.bulkhead.release()
    if permit is not None:
        policy.breaker.release(permit)  # type: ignore[union-attr]


async def _agive_back(policy: HostPolicy, permit: Permit | None) -> None:
    if policy.bulkhead is not None:
        policy.bulkhead.release()
    if permit is not None:
        await policy.breaker.arelease(permit)  # type: ignore[union-attr]


async def _arecord(
    breaker: CircuitBreaker, permit: Permit, failure: BaseException | None, duration: float
) -> None:
    if failure is None:
        if not breaker.record_success_fast(permit, duration):
            await breaker.arecord_success(permit, duration)
    else:
        await breaker.arecord_failure(permit, failure, duration)


async def _spend(policy: HostPolicy) -> bool:
    """Take a retry from the host's budget (True without a budget)."""
    budget = policy.budget
    return True if budget is None else await budget.atry_spend()
