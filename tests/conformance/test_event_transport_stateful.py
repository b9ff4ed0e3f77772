"""Memory and Redis event transports, driven by the same random operations, must deliver the same events.

A hypothesis state machine subscribes recording handlers with random patterns (segments ``a``, ``b``,
``c``, ``*``, ``**``), unsubscribes them, and publishes random topics (``a``/``b``/``c``, depth 1 to 3) with
small JSON payloads. Every operation runs on a memory bus and on a pair of Redis buses A and B that share
a fresh channel prefix (a real server at ``BUTTRESS_TEST_REDIS_URL``): each subscription exists on the
memory bus, on A and on B; each publish goes out from A or from B (memory has one bus: two memory buses
share nothing). After every step, the ``(topic, payload)`` sequence of each live subscription must be the
same on memory, on A and on B, and equal to a pure-Python model whose matcher is written here from the
documented rules (``*`` is one segment, ``**`` any number including zero), not taken from the library.
So Redis fans out across buses with no echo lost or doubled and one publisher's order kept.

Payloads stay JSON-safe with string keys: non-JSON payloads and non-string keys are known divergences,
kept visible as strict xfails in ``test_event_transport_conformance.py``.

Waits are on conditions, never sleeps. After each step A publishes a fence that B waits for, then B one
that A waits for: a bus's listener hands over remote events in the order Redis published them, so once a
fence has arrived every earlier event of its publisher sits in the subscriptions' queues, and ``flush``
then waits until the handlers have run.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from buttress.events import Event, EventBus, RedisTransport, create_event_bus

WAIT = 20.0  # upper bound of every wait on a condition
FENCE = "fence"  # first segment of the fence topics; user topics and literal segments are a, b, c

Delivery = tuple[str, str]  # (topic, payload as JSON text: tells 1 from 1.0 and True, keeps key order)

segments = st.sampled_from(["a", "b", "c"])
topics = st.lists(segments, min_size=1, max_size=3).map(".".join)
# Hand-picked patterns that match often, exact topics, and any mix of up to four segments.
patterns = (
    st.sampled_from(["**", "*", "a.**", "**.c", "a.*", "*.b", "a.**.c", "*.*", "**.b.**", "*.**", "**.*"])
    | topics
    | st.lists(st.sampled_from(["a", "b", "c", "*", "**"]), min_size=1, max_size=4).map(".".join)
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
payloads = st.dictionaries(
    st.text(max_size=4),
    st.recursive(leaves, lambda inner: st.lists(inner, max_size=2), max_leaves=3),
    max_size=3,
)


def model_matches(pattern: list[str], topic: list[str]) -> bool:
    """The documented rules, segment by segment: ``*`` takes one, ``**`` any number (zero included)."""
    if not pattern:
        return not topic
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(model_matches(rest, topic[skip:]) for skip in range(len(topic) + 1))
    if not topic or head not in ("*", topic[0]):
        return False
    return model_matches(rest, topic[1:])


def delivery(topic: str, payload: Any) -> Delivery:
    return topic, json.dumps(dict(payload))


class Inbox:
    """What one subscription received, in order (fence events left out: they are the test's own)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = threading.Condition()

    def record(self, event: Event) -> None:
        with self._changed:
            if event.topic.split(".")[0] != FENCE:
                self.deliveries.append(delivery(event.topic, event.payload))
            self._changed.notify_all()

    def snapshot(self) -> list[Delivery]:
        with self._changed:
            return list(self.deliveries)


class FenceInbox:
    """The numbers of the fence events one bus received from its peer."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self._changed = threading.Condition()

    def record(self, event: Event) -> None:
        with self._changed:
            self.seen.add(int(event.payload["n"]))
            self._changed.notify_all()

    def wait_for(self, number: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: number in self.seen, WAIT)


class Sub:
    """One subscription as it exists on every bus, with what the model says it should have received."""

    def __init__(self, machine: EventMachine, pattern: str) -> None:
        self.pattern = pattern
        self.segments = pattern.split(".")
        self.expected: list[Delivery] = []
        self.inboxes = {name: Inbox() for name in machine.buses}
        self.subscriptions = [
            bus.subscribe(pattern, self.inboxes[name].record) for name, bus in machine.buses.items()
        ]

    def __repr__(self) -> str:
        return f"Sub({self.pattern!r})"


class EventMachine(RuleBasedStateMachine):
    """Every rule runs on the memory bus and on the Redis pair; the invariant compares every inbox."""

    subs = Bundle("subs")
    url = ""  # set by a subclass per test: hypothesis builds the machine from its class

    def __init__(self) -> None:
        super().__init__()
        url = self.url
        prefix = f"buttress-test:events-stateful:{uuid.uuid4().hex}"
        self.buses: dict[str, EventBus] = {"memory": create_event_bus("memory")}
        try:
            for name in ("redis A", "redis B"):
                bus = create_event_bus("redis", redis_url=url, prefix=prefix)
                self.buses[name] = bus
                assert isinstance(bus.transport, RedisTransport)
                assert bus.transport.wait_connected(WAIT), bus.transport.status()
        except BaseException:  # no teardown for a machine that was never built
            self.teardown()
            raise
        self.a, self.b = self.buses["redis A"], self.buses["redis B"]
        self.fences = {"a": FenceInbox(), "b": FenceInbox()}
        self.b.subscribe(f"{FENCE}.a", self.fences["b"].record)  # B hears A's fences
        self.a.subscribe(f"{FENCE}.b", self.fences["a"].record)  # A hears B's fences
        self.fence_count = 0
        self.live: list[Sub] = []

    @rule(target=subs, pattern=patterns)
    def subscribe(self, pattern: str) -> Sub:
        sub = Sub(self, pattern)
        self.live.append(sub)
        return sub

    @rule(sub=consumes(subs))
    def unsubscribe(self, sub: Sub) -> None:
        for subscription in sub.subscriptions:
            subscription.unsubscribe()
        self.live.remove(sub)

    @rule(burst=st.lists(st.tuples(topics, payloads), min_size=1, max_size=4), from_b=st.booleans())
    def publish(self, burst: list[tuple[str, dict[str, Any]]], from_b: bool) -> None:
        """A few events back to back from one Redis bus (and the memory bus): their order must hold."""
        for topic, payload in burst:
            self.buses["memory"].publish(topic, payload)
            (self.b if from_b else self.a).publish(topic, payload)
            for sub in self.live:
                if model_matches(sub.segments, topic.split(".")):
                    sub.expected.append(delivery(topic, payload))

    def settle(self) -> None:
        """Return once every bus has handled every event published so far (see the module docstring)."""
        for bus in self.buses.values():
            assert bus.flush(WAIT), bus.stats()
        self.fence_count += 1
        number = self.fence_count
        self.a.publish(f"{FENCE}.a", {"n": number})
        assert self.fences["b"].wait_for(number), ("B never got A's fence", self.b.stats())
        self.b.publish(f"{FENCE}.b", {"n": number})
        assert self.fences["a"].wait_for(number), ("A never got B's fence", self.a.stats())
        for bus in self.buses.values():
            assert bus.flush(WAIT), bus.stats()

    @invariant()
    def every_subscription_received_what_the_model_says(self) -> None:
        self.settle()
        for sub in self.live:
            got = {name: inbox.snapshot() for name, inbox in sub.inboxes.items()}
            assert got["memory"] == sub.expected, (sub, "memory differs from the model", got, sub.expected)
            assert got["redis A"] == got["memory"], (sub, "redis A differs from memory", got)
            assert got["redis B"] == got["redis A"], (sub, "redis B differs from redis A", got)

    @invariant()
    def redis_carried_everything(self) -> None:
        """Both Redis buses stayed connected and no subscription dropped an event (else B's answers
        would come from a degraded path, or a full queue would hide a missing event)."""
        for name, bus in self.buses.items():
            stats = bus.stats()
            if name != "memory":
                assert stats["transport"]["connected"] is True, stats
            assert all(s.dropped == 0 and s.failed == 0 for s in bus.subscriptions), stats

    def teardown(self) -> None:
        for bus in self.buses.values():
            bus.close(WAIT)


def test_memory_and_redis_transports_deliver_alike(redis_url: str) -> None:
    class Machine(EventMachine):
        url = redis_url

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("**", "a", True),
        ("a.**", "a", True),
        ("**.a", "a", True),
        ("a.**.c", "a.c", True),
        ("a.**.c", "a.b.b.c", True),
        ("*", "a.b", False),
        ("*.*", "a", False),
        ("a.*", "a", False),
        ("**.**", "a.b.c", True),
        ("*.**.*", "a", False),
    ],
)
def test_the_model_matcher_follows_the_documented_rules(pattern: str, topic: str, matches: bool) -> None:
    """The model is the yardstick, so its own edges are pinned here."""
    assert model_matches(pattern.split("."), topic.split(".")) is matches
