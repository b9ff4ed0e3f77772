"""The failover drills: the primary is SIGKILLed (or demoted by a planned ``SENTINEL FAILOVER``) while calls
keep coming, and the sentinels promote the replica.

Callers get their owners' outage policy in between (the cache serves from memory, a ``local`` resilience
store decides in memory, a ``closed`` one refuses with the policy's CircuitOpen), nothing else escapes, and
every owner is back on the new primary within one reconnect backoff of the promotion. A demoted primary
answers writes with READONLY, which counts as an outage too. The figures (seconds of degraded service per
owner, errors seen by callers) are printed; docs/redis-sentinel.md quotes them.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from buttress._redis._sentinel import RECHECK
from buttress.cache._backend import Entry
from buttress.cache._redis import RedisBackend
from buttress.errors import CircuitOpen
from buttress.events import Event
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import CircuitBreaker, RateLimiter, RedisState
from tests._redis_sentinel import SentinelDeployment
from tests.cache._tiered_child import redis_bus

WAIT = 2.0  # upper bound for events already sent to arrive
DEADLINE = 40.0  # upper bound for the whole drill after the kill
STEADY = 0.5  # seconds of calls before the kill
RECOVERY = 10.0  # back within this many seconds of the promotion (the default backoff: 0.5 s doubling)


@dataclass
class Owner:
    """One caller's view: when its owner went degraded and when it served from Redis again."""

    name: str
    available: Callable[[], bool]
    down_at: float | None = None
    up_at: float | None = None
    calls: int = 0

    def sample(self, now: float) -> None:
        self.calls += 1
        if self.available():
            if self.down_at is not None and self.up_at is None:
                self.up_at = now
        elif self.down_at is None:
            self.down_at = now


@dataclass
class Drill:
    how: str
    killed_at: float = 0.0
    promoted_at: float | None = None
    demoted_at: float | None = None  # a switchover: when the old primary answered as a replica
    stored: list[tuple[int, float]] = field(default_factory=list)  # rounds whose write Redis took, and when
    lost: list[float] = field(default_factory=list)  # when the writes the new primary does not have were made
    leaks: list[str] = field(default_factory=list)
    refused: int = 0  # the closed store's CircuitOpen: its policy, not a leak
    misses: int = 0  # cache reads that found nothing (a write lost with the killed primary, or to memory)
    published: list[float] = field(default_factory=list)
    arrived: dict[int, float] = field(default_factory=dict)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[SentinelDeployment]:
    """A deployment of this test's own: the drill kills its primary."""
    with SentinelDeployment(tmp_path, password="data-s3cret") as running:
        yield running


@pytest.mark.parametrize("how", ["kill", "switchover"])
def test_a_failover_costs_seconds_of_outage_policy_and_no_exception(
    deployment: SentinelDeployment, how: str
) -> None:
    url = deployment.url()
    prefix = f"drill:{uuid.uuid4().hex}"
    cache = RedisBackend(url, prefix=f"{prefix}:cache")
    local = RedisState(url, prefix=f"{prefix}:local", policy="local", metrics=MetricsRegistry())
    closed = RedisState(url, prefix=f"{prefix}:closed", policy="closed", metrics=MetricsRegistry())
    limiter = RateLimiter("100000/s", name="drill", store=local, metrics=MetricsRegistry())
    breaker = CircuitBreaker("drill", store=closed, metrics=MetricsRegistry())
    sender, receiver = redis_bus(url, f"{prefix}:events"), redis_bus(url, f"{prefix}:events")
    loop = asyncio.new_event_loop()
    drill = Drill(how)

    def arrived(event: Event) -> None:
        drill.arrived.setdefault(int(event.payload["i"]), time.monotonic())

    receiver.subscribe("drill.*", arrived)
    owners = [
        Owner("cache", lambda: cache.available),
        Owner("store (local)", lambda: local.available),
        Owner("store (closed)", lambda: closed.available),
    ]

    def failover() -> None:
        old = deployment.kill_primary() if how == "kill" else deployment.switchover()
        drill.killed_at = time.monotonic()  # t=0: the primary has exited, or the sentinels were asked
        deployment.wait_for_failover(old)
        drill.promoted_at = time.monotonic()
        if how == "switchover":
            deployment.wait_for_demotion(old)
            drill.demoted_at = time.monotonic()

    def one_round(i: int) -> None:
        key = f"ns:{i % 50}"
        try:
            cache.set(key, Entry(i), 60)
            cache.set(f"w:{i}", Entry(i), 60)  # one key per round: is it on the new primary at the end?
            entry = cache.get(key)
            drill.misses += entry is None
            async_entry = loop.run_until_complete(cache.aget(key))
            drill.misses += async_entry is None
            assert limiter.try_acquire(), "the local policy admits"
            try:
                breaker.call(lambda: "upstream answered")
            except CircuitOpen as exc:
                if "outage policy is 'closed'" not in str(exc):
                    raise
                drill.refused += 1
            sender.publish("drill.tick", {"i": i})
            drill.published.append(time.monotonic())
        except Exception as exc:
            drill.leaks.append(f"{type(exc).__name__}: {exc}")

    killer = threading.Thread(target=failover)
    started = time.monotonic()
    i = 0
    try:
        while True:
            now = time.monotonic()
            if now - started > STEADY and killer.ident is None:
                killer.start()
            one_round(i)
            for owner in owners:
                owner.sample(time.monotonic())
            if cache.available:
                drill.stored.append((i, time.monotonic()))
            i += 1
            recovered = all(owner.down_at is None or owner.up_at is not None for owner in owners)
            switched = drill.promoted_at if how == "kill" else drill.demoted_at
            if switched is not None and recovered and any(t > switched for t in drill.arrived.values()):
                break
            assert now - started < DEADLINE + STEADY, _summary(drill, owners)
            time.sleep(0.01)  # a caller's pace: about 100 rounds a second
        killer.join(DEADLINE)
        _count_lost_writes(drill, deployment, f"{prefix}:cache")
        assert sender.flush(WAIT)
        deadline = time.monotonic() + WAIT
        while len(drill.arrived) < len(drill.published) and time.monotonic() < deadline:
            time.sleep(0.01)  # the last events are on their way: count only those really lost
        _check(drill, owners)
        cache.set("after", Entry("new primary"), 60)
        loop.run_until_complete(cache.aset("async-after", Entry("new primary"), 60))
        with deployment.data_client(deployment.primary_port) as primary:  # written to the promoted replica
            assert primary.exists(f"{prefix}:cache:after", f"{prefix}:cache:async-after") == 2
    finally:
        loop.run_until_complete(cache.aclose())
        loop.close()
        cache.close()
        local.close()
        closed.close()
        sender.close()
        receiver.close()


def _count_lost_writes(drill: Drill, deployment: SentinelDeployment, prefix: str) -> None:
    """Which of the writes Redis took the new primary does not have (a failover's lost updates)."""
    with deployment.data_client(deployment.primary_port) as primary:
        pipe = primary.pipeline(transaction=False)
        for n, _ in drill.stored:
            pipe.exists(f"{prefix}:w:{n}")
        found = pipe.execute()
    drill.lost = [at for (_, at), there in zip(drill.stored, found, strict=True) if not there]


def _check(drill: Drill, owners: list[Owner]) -> None:
    """Print the figures, then hold the drill to them."""
    figures = _summary(drill, owners)
    print(f"\n[{drill.how}] {figures}")  # the drill's figures, quoted in docs/redis-sentinel.md
    assert drill.leaks == [], figures
    assert drill.promoted_at is not None
    for owner in owners:
        if drill.how == "kill":
            assert owner.down_at is not None, f"{owner.name} never noticed the outage: {figures}"
        if owner.down_at is not None:
            assert owner.up_at is not None
            assert owner.up_at - drill.promoted_at < RECOVERY, figures
    if drill.how == "kill":
        assert drill.refused > 0  # the closed policy was applied while the primary was gone
    else:  # the pools left the old primary within RECHECK of the promotion, not at its demotion
        assert all(at < drill.promoted_at + RECHECK + 0.5 for at in drill.lost), figures


def _summary(drill: Drill, owners: list[Owner]) -> str:
    killed = drill.killed_at
    promoted = None if drill.promoted_at is None else drill.promoted_at - killed
    demoted = None if drill.demoted_at is None else drill.demoted_at - killed
    start = "primary SIGKILLed" if drill.how == "kill" else "SENTINEL FAILOVER sent"
    lines = [f"sentinel failover drill: {start} at t=0; replica promoted at t={_s(promoted)}"]
    if drill.how == "switchover":
        lines.append(f"  old primary demoted at t={_s(demoted)}")
    for owner in owners:
        down = None if owner.down_at is None else owner.down_at - killed
        up = None if owner.up_at is None else owner.up_at - killed
        degraded = None if down is None or up is None else up - down
        lines.append(
            f"  {owner.name}: degraded at t={_s(down)}, back at t={_s(up)}: {_s(degraded)} s degraded"
        )
    lines.append(
        f"  writes: {len(drill.lost)} of {len(drill.stored)} that Redis took are not on the new primary"
    )
    after = sorted(t - killed for t in drill.arrived.values() if t > killed)
    lost = len(drill.published) - len(drill.arrived)
    lines.append(
        f"  events: first delivered after the kill at t={_s(after[0] if after else None)}; "
        f"{lost} of {len(drill.published)} published never arrived (pub/sub keeps nothing)"
    )
    lines.append(
        f"  callers: {len(drill.leaks)} exceptions escaped, {drill.refused} CircuitOpen by the 'closed' "
        f"policy, {drill.misses} cache misses; {owners[0].calls} rounds"
    )
    return "\n".join(lines)


def _s(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"
