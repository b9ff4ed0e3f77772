"""Breakers, limiters and retry budgets on a real Redis Cluster: pushes, slots, and a primary killed mid-run.

The failover drill runs one breaker and one limiter, both on the primary it then SIGKILLs, under each
outage policy at once (three RedisStates on one prefix, as three services would be): while the replica is
promoted the policy decides (``local``/``open``: every call admitted, no error; ``closed``: refused with
``CircuitOpen``/``RateLimited``, never another error), and after the promotion the shared state is used
again. It prints the seconds each store was degraded and what its callers saw (the figures in
docs/redis-cluster.md come from this output).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pytest

from buttress.errors import CircuitOpen, RateLimited
from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import CircuitBreaker, RateLimiter, RedisState
from buttress.resilience._redis_state import StorePolicy
from tests._redis_cluster import RedisCluster

POLICIES: tuple[StorePolicy, ...] = ("local", "open", "closed")
RECOVERY = 40.0  # seconds from the kill until every store must use the cluster again


class Down(Exception):
    pass


def _fail() -> None:
    raise Down("upstream failed")


def _state(url: str, prefix: str, **options: object) -> RedisState:
    return RedisState(url, prefix=prefix, metrics=MetricsRegistry(), events=EventBus(), **options)  # type: ignore[arg-type]


def _breaker(state: RedisState, name: str, **options: object) -> CircuitBreaker:
    return CircuitBreaker(name, store=state, metrics=MetricsRegistry(), events=EventBus(), **options)  # type: ignore[arg-type]


def _limiter(state: RedisState, name: str) -> RateLimiter:
    return RateLimiter(
        "10000/s", burst=10000, name=name, store=state, metrics=MetricsRegistry(), events=EventBus()
    )


@pytest.fixture
def prefix() -> str:
    return f"drill-{uuid.uuid4().hex[:8]}"


def _wait(condition: object, within: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {within} s"
        time.sleep(0.01)  # polling a real condition with a deadline


def test_a_trip_is_pushed_to_another_process_through_the_cluster(
    redis_cluster: RedisCluster, prefix: str
) -> None:
    here = _state(redis_cluster.url, prefix)
    there = _state(redis_cluster.url, prefix, sync_interval=60)  # only a push can change its copy in time
    try:
        tripper = _breaker(here, "payments", consecutive_failures=1, open_duration=300)
        other = _breaker(there, "payments", consecutive_failures=1, open_duration=300)
        other.call(lambda: None)  # its copy: CLOSED, trusted for a minute
        assert there.breaker_feed().subscriber.subscribed.wait(10)
        with contextlib.suppress(Down):
            tripper.call(_fail)
        _wait(lambda: _refused(other), 5, "the pushed trip")
    finally:
        here.close()
        there.close()


def _refused(breaker: CircuitBreaker) -> bool:
    try:
        breaker.call(lambda: None)
    except CircuitOpen:
        return True
    return False


def test_limiter_buckets_spread_over_slots_and_a_peek_reads_them_all(
    redis_cluster: RedisCluster, prefix: str
) -> None:
    state = _state(redis_cluster.url, prefix)
    try:
        limiter = RateLimiter("1/minute", burst=2, name="users", store=state, metrics=MetricsRegistry())
        users = [f"user-{i}" for i in range(12)]
        for user in users[:6]:
            assert limiter.try_acquire(user)
        available = [limiter.snapshot(user).available for user in users]
        assert available == pytest.approx([1] * 6 + [2] * 6, abs=0.01)
        primaries = {redis_cluster.primary_of(f"{prefix}:limiter:users:{user}") for user in users}
        assert len(primaries) > 1  # a per-user limit is spread over the cluster, not one hot slot
    finally:
        state.close()


@dataclass
class Caller:
    """One outage policy's breaker and limiter, and what their callers saw."""

    policy: StorePolicy
    state: RedisState
    breaker: CircuitBreaker
    limiter: RateLimiter
    key: str
    seen: Counter[str] = field(default_factory=Counter)
    degraded_at: float | None = None
    back_at: float | None = None

    def call(self, now: float) -> None:
        for name, attempt in (("breaker", self._pass), ("limiter", self._take)):
            try:
                self.seen[f"{name} {'admitted' if attempt() else 'refused'}"] += 1
            except (CircuitOpen, RateLimited):
                self.seen[f"{name} refused"] += 1
            except Exception as exc:
                self.seen[f"{name} error {type(exc).__name__}"] += 1
        if not self.state.available and self.degraded_at is None:
            self.degraded_at = now
        if self.state.available and self.degraded_at is not None and self.back_at is None:
            self.back_at = now

    def _pass(self) -> bool:
        return self.breaker.call(lambda: True)

    def _take(self) -> bool:
        return self.limiter.try_acquire(self.key)


def _key_on(cluster: RedisCluster, port: int, prefix: str) -> str:
    """A limiter key whose bucket lives on the primary at ``port``."""
    for i in range(1000):
        if cluster.primary_of(f"{prefix}:limiter:drill:k{i}") == port:
            return f"k{i}"
    raise AssertionError("no key found on that primary")


def _judge(callers: list[Caller], before: dict[StorePolicy, Counter[str]], promoted: float) -> None:
    """Check what each policy's callers saw during the failover, and print the figures."""
    report = [f"failover drill: promoted {promoted:.2f} s after the kill"]
    for caller in callers:
        during = caller.seen - before[caller.policy]
        assert caller.degraded_at is not None
        assert caller.back_at is not None
        degraded = caller.back_at - caller.degraded_at
        report.append(f"{caller.policy}: degraded {degraded:.2f} s, calls {dict(sorted(during.items()))}")
        errors = {what: n for what, n in during.items() if " error " in what}
        assert not errors, f"{caller.policy}: callers saw errors {errors}"
        if caller.policy == "closed":
            assert during["breaker refused"] + during["limiter refused"] > 0
        else:
            assert during["breaker refused"] == during["limiter refused"] == 0
    print("\n" + "\n".join(report))


def test_failover_drill_the_policy_holds_and_the_state_is_used_again(
    redis_cluster: RedisCluster, prefix: str
) -> None:
    breaker_key = f"{prefix}:{{breaker:drill}}"
    port = redis_cluster.primary_of(breaker_key)
    key = _key_on(redis_cluster, port, prefix)
    callers = []
    killed = None
    for policy in POLICIES:
        state = _state(redis_cluster.url, prefix, policy=policy)
        callers.append(Caller(policy, state, _breaker(state, "drill"), _limiter(state, "drill"), key))
    try:
        for _ in range(20):  # warm: every store has used the cluster
            for caller in callers:
                caller.call(time.monotonic())
        assert all(caller.state.available for caller in callers)
        before = {caller.policy: Counter(caller.seen) for caller in callers}
        killed_at = time.monotonic()
        killed = redis_cluster.kill_primary_of(breaker_key)
        promoted_at = None
        while True:
            now = time.monotonic()
            for caller in callers:
                caller.call(now)
            if promoted_at is None and redis_cluster.primary_of(breaker_key) in redis_cluster.alive():
                promoted_at = now
            if all(caller.back_at is not None for caller in callers) and promoted_at is not None:
                break
            assert now - killed_at < RECOVERY, {c.policy: (c.degraded_at, c.back_at, c.seen) for c in callers}
            time.sleep(0.005)  # a caller's pace, not a wait for a condition
        _judge(callers, before, promoted_at - killed_at)
        # usable again: the shared state answers, a trip here is seen there, a limit is shared
        here, there = callers[0], callers[2]
        assert not here.limiter.is_local
        here.breaker.isolate()
        assert there.state.breaker_feed().settle(10)
        _wait(lambda: _refused(there.breaker), 10, "the isolation pushed after the failover")
        here.breaker.reset()
    finally:
        for caller in callers:
            caller.state.close()
        if killed is not None:
            redis_cluster.restart_node(killed)  # the session's cluster is left whole for the next test
