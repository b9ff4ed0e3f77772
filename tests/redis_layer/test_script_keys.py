"""Every script can run on a Redis Cluster: it is passed every key it touches, and they share one slot.

Two guards that need no cluster. The static one reads each script (fragments expanded): every key
position of a ``redis.call`` must be ``KEYS[n]``, a local bound once from ``KEYS`` (``local K = KEYS[1]``,
``for _, key in ipairs(KEYS)``) or a helper's parameter that every call gives such a key, never a name
built in Lua (``prefix .. tag``) or read from data; no ``KEYS``/``SCAN`` command. The wire one watches a
throwaway ``redis-server`` with ``MONITOR`` while every resilience and realtime store runs each of its
scripts, and checks the keys of every call hash to one slot (``redis.crc.key_slot``), as a cluster
requires.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from buttress._redis import Script, script_names
from buttress.observe.metrics import MetricsRegistry
from buttress.realtime import Position, Replay
from buttress.realtime._redis_log import RedisTopicLog
from buttress.resilience._breaker_redis import RedisBreakerStore
from buttress.resilience._breaker_state import FAILURE, BreakerConfig, BreakerState
from buttress.resilience._budget_redis import RedisBudgetStore
from buttress.resilience._limiter_redis import RedisLimiterStore
from buttress.resilience._redis_state import RedisState
from tests._redis_server import RedisServer

_KEYLESS = {"TIME", "PUBLISH"}  # PUBLISH takes a channel, which no slot holds
_ALL_KEYS = {"DEL", "UNLINK", "EXISTS", "TOUCH"}  # every argument is a key
_FORBIDDEN = {"KEYS", "SCAN"}
_CALL = re.compile(r"redis\.p?call\(")
_BINDING = re.compile(r"local\s+([\w\s,]+?)\s*=\s*(KEYS\[\d+\](?:\s*,\s*(?:KEYS\[\d+\]|nil))*)")
_FUNCTION = re.compile(r"local\s+function\s+(\w+)\s*\(([^)]*)\)")
_LOOP = re.compile(r"for\s+\w+\s*,\s*(\w+)\s+in\s+ipairs\(KEYS\)")


def _arguments(source: str, start: int) -> list[str]:
    """The top-level arguments of the call whose ``(`` is just before ``start``."""
    depth, quote, current, out = 0, "", [], []
    for char in source[start:]:
        if quote:
            current.append(char)
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char in "({[":
            depth += 1
            current.append(char)
        elif char in ")}]" and depth:
            depth -= 1
            current.append(char)
        elif char == ")":
            out.append("".join(current).strip())
            return out
        elif char == "," and not depth:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    raise AssertionError(f"unbalanced call at {start}")


def _key_parameters(source: str, bound: set[str]) -> set[str]:
    """Parameters of local functions that every call passes a key from KEYS (``extend(KEYS[i], ...)``)."""
    names: set[str] = set()
    for definition in _FUNCTION.finditer(source):
        parameters = [name.strip() for name in definition[2].split(",") if name.strip()]
        calls = [
            _arguments(source, call.end())
            for call in re.finditer(rf"(?<![\w.]){definition[1]}\(", source)
            if call.start() != definition.start(1)
        ]
        if calls:
            names.update(
                name
                for i, name in enumerate(parameters)
                if all(i < len(args) and _is_key(args[i], bound) for args in calls)
            )
        else:  # a fragment's helper this script never calls never runs; its names must not be reused
            names.update(name for name in parameters if not re.search(rf"(?<![\w.]){name}\s*=(?!=)", source))
    return names


def _is_key(argument: str, bound: set[str]) -> bool:
    return bool(re.fullmatch(r"KEYS\[\w+\]", argument)) or argument in bound


def _bound_names(source: str) -> set[str]:
    """Locals bound from KEYS (or nil), each assigned nowhere else, and helper parameters given only them."""
    names: set[str] = set()
    for match in _BINDING.finditer(source):
        names.update(name.strip() for name in match[1].split(","))
    names.update(match[1] for match in _LOOP.finditer(source))
    rest = _LOOP.sub("", _BINDING.sub("", source))
    for name in names:
        assignments = re.findall(rf"(?<![\w.]){re.escape(name)}\s*=(?!=)", rest)
        assert not assignments, f"{name!r} is bound from KEYS and assigned again"
    return names | _key_parameters(source, names)


def violations(source: str) -> list[str]:
    """What in ``source`` would touch a key the script was not passed (empty: none)."""
    bound = _bound_names(source)
    found = []
    for match in _CALL.finditer(source):
        arguments = _arguments(source, match.end())
        command = arguments[0].strip("'\"").upper()
        if not re.fullmatch(r"'\w+'|\"\w+\"", arguments[0]):
            found.append(f"a command named at run time: {arguments[0]}")
            continue
        if command in _FORBIDDEN:
            found.append(f"{command} inside a script")
        if command in _KEYLESS:
            continue
        keys = arguments[1:] if command in _ALL_KEYS else arguments[1:2]
        found.extend(f"{command} on {key!r}, not a key from KEYS" for key in keys if not _is_key(key, bound))
    return found


@pytest.mark.parametrize("name", script_names())
def test_every_script_touches_only_the_keys_it_is_passed(name: str) -> None:
    found = violations(Script.file(name).source)
    assert not found, f"{name}: {found}"


def test_the_static_rule_catches_a_built_key_and_a_scan() -> None:
    assert violations("local k = KEYS[1]\nredis.call('GET', k)\nredis.call('PUBLISH', 'x' .. k, 1)") == []
    assert violations("redis.call('DEL', ARGV[1] .. ':w')")
    assert violations("local k = KEYS[1]\nredis.call('DEL', k, k .. ':l')")
    assert violations("redis.call('SCAN', 0)")
    assert violations("for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do redis.call('GET', m) end")
    helper = "local function touch(k, v) redis.call('SET', k, v) end\n"
    assert violations(helper + "touch(KEYS[1], ARGV[1])\ntouch(KEYS[2], 1)") == []
    assert violations(helper + "touch(KEYS[1], 1)\ntouch(ARGV[1] .. 'x', 1)")
    with pytest.raises(AssertionError, match="assigned again"):
        violations("local k = KEYS[1]\nk = k .. ':x'\nredis.call('GET', k)")


# -- on the wire -------------------------------------------------------------------------------------

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


class Monitor:
    """Every EVAL/EVALSHA a Redis runs, as (sha or source, keys), read in a thread through MONITOR."""

    def __init__(self, port: int) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self._client = redis.Redis(port=port)
        self._monitor = self._client.monitor().__enter__()  # type: ignore[no-untyped-call]
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = self._monitor.connection
        while not self._stop:
            try:
                line = connection.read_response()
            except (redis.RedisError, OSError, ValueError):  # closed at the end of the test
                return
            words = _QUOTED.findall(line.decode() if isinstance(line, bytes) else str(line))
            command = words[0].upper() if words else ""
            if command in ("EVALSHA", "EVAL"):  # an EVAL's source stands for itself
                count = int(words[2])
                self.calls.append((words[1] if command == "EVALSHA" else "EVAL", words[3 : 3 + count]))

    def wait_for(self, shas: set[str], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not shas <= {sha for sha, _ in self.calls}:
            assert time.monotonic() < deadline, f"not seen: {shas - {sha for sha, _ in self.calls}}"
            time.sleep(0.01)  # polling a condition with a deadline

    def close(self) -> None:
        self._stop = True
        self._client.close()
        self._monitor.connection.disconnect()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as running:
        yield running


def _exercise_resilience(url: str) -> None:
    state = RedisState(url, prefix=f"keys-{uuid.uuid4().hex[:8]}", metrics=MetricsRegistry())
    try:
        config = BreakerConfig(consecutive_failures=1, open_duration=0.001)
        breaker = RedisBreakerStore(state, "api", config)
        permit = breaker.acquire().permit
        assert permit is not None
        breaker.record(permit, FAILURE)  # trips (publishes on the state key's channel)
        deadline = time.monotonic() + 5
        probe = breaker.acquire().permit
        while probe is None or probe.lease is None:  # half-open after 1 ms: a probe lease
            assert time.monotonic() < deadline
            probe = breaker.acquire().permit
        breaker.release(probe)
        breaker.control(BreakerState.CLOSED)
        breaker.view()
        limiter = RedisLimiterStore(state, "users", interval=1.0, period=1.0, limit=1, burst=1, max_keys=100)
        limiter.by_slot = True  # as on a cluster
        limiter.take("alice", 1, 0.0)
        wait, tat = limiter.take("alice", 1, 5.0)  # admitted after a wait: refundable
        assert wait > 0
        limiter.refund("alice", 1, tat)
        assert len(limiter.available(["alice", "bob", "carol", "dave"])) == 4
        limiter.reset("alice")
        budget = RedisBudgetStore(state, "api", 1.0)
        budget.record()
        budget.try_spend(0.5, 1)
        budget.counts()
    finally:
        state.close()


async def _replay(log: RedisTopicLog) -> Replay:
    try:
        return await log.read_after(Position(log.status()["epoch"], 0), 10)
    finally:
        await log.release_loop()


def test_every_call_passes_keys_of_one_slot(server: RedisServer) -> None:
    monitor = Monitor(server.port)
    try:
        _exercise_resilience(server.url)
        log = RedisTopicLog(server.url, prefix=f"keys-{uuid.uuid4().hex[:8]}:realtime")
        try:
            log.append("orders", {"n": 1}, time.time())
            assert log.flush(10.0)
            loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the loop pytest-asyncio keeps
            try:
                assert loop.run_until_complete(_replay(log)).entries
            finally:
                loop.close()
        finally:
            log.close()
        names = [n for n in script_names() if n.split("_")[0] in ("breaker", "limiter", "budget", "realtime")]
        scripts = {Script.file(name).sha: name for name in names}
        monitor.wait_for(set(scripts))
    finally:
        monitor.close()
    for sha, keys in monitor.calls:
        name = scripts.get(sha, sha[:40])
        assert keys, f"{name} was passed no key: a cluster cannot route it"
        assert len({key_slot(key.encode()) for key in keys}) == 1, f"{name} keys span slots: {keys}"
