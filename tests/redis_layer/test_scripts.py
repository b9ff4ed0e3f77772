"""Scripts are .lua files shipped in the package: every one loads, includes expand, NOSCRIPT reloads."""

from __future__ import annotations

import re
import uuid
from importlib.resources import files
from typing import Any

import pytest

from buttress._redis import LUA_NOW, RedisConnection, Script, execute, script_names
from buttress._redis._script import include

pytestmark = pytest.mark.redis

_LUA = files("buttress._redis") / "lua"
_ECHO_NOW = Script("--@include now\nreturn fmt(now)\n")


def _fragments() -> set[str]:
    return {p.name[:-4] for p in (_LUA / "include").iterdir() if p.name.endswith(".lua")}


def test_every_script_loads_into_a_real_redis(redis_client: Any) -> None:
    names = script_names()
    assert {"breaker_record", "limiter_acquire", "budget_spend", "cache_incr"} <= set(names)
    for name in names:
        script = Script.file(name)
        assert "--@include" not in script.source
        assert redis_client.script_load(script.source) == script.sha, name


def test_every_fragment_is_used_and_compiles(redis_client: Any) -> None:
    used = {
        match
        for name in script_names()
        for match in re.findall(r"^--@include (\S+)", (_LUA / f"{name}.lua").read_text(), re.MULTILINE)
    }
    assert used == _fragments()
    for fragment in _fragments():
        redis_client.script_load(include(fragment))  # a fragment alone is valid Lua too


def test_the_now_prelude_is_composed_in() -> None:
    assert _ECHO_NOW.source.startswith(LUA_NOW.strip("\n"))
    assert "local now = tonumber(ARGV[1])" in Script.file("limiter_acquire").source
    assert repr(Script.file("cache_incr")).startswith("Script(cache_incr, sha=")


def test_an_unknown_include_fails_loudly() -> None:
    with pytest.raises(FileNotFoundError):
        Script("--@include no_such_fragment\nreturn 1\n")


def test_noscript_after_script_flush_loads_the_script_again(redis_url: str, redis_client: Any) -> None:
    connection = RedisConnection(redis_url, prefix=f"t{uuid.uuid4().hex}")
    try:
        assert int(connection.run(_ECHO_NOW, [], [""])) > 0
        redis_client.script_flush()
        assert redis_client.script_exists(_ECHO_NOW.sha) == [False]
        assert int(connection.run(_ECHO_NOW, [], ["42"])) == 42
        assert redis_client.script_exists(_ECHO_NOW.sha) == [True]
    finally:
        connection.close()


async def test_noscript_reloads_on_the_async_client_and_in_plans(redis_url: str, redis_client: Any) -> None:
    incr = Script.file("cache_incr")
    connection = RedisConnection(redis_url, prefix=f"t{uuid.uuid4().hex}", scripts=[incr])
    key = connection.key("n")
    try:
        redis_client.script_flush()
        assert int(await connection.arun(_ECHO_NOW, [], ["7"])) == 7
        redis_client.script_flush()
        # a plan yields a raw EVALSHA: the connection loads its registered scripts on NOSCRIPT
        assert int(connection.call(execute, "EVALSHA", incr.sha, 1, key, 5, "")) == 5  # the stored decimal
        redis_client.script_flush()
        assert int(await connection.acall(execute, "EVALSHA", incr.sha, 1, key, 1, "")) == 6
    finally:
        await connection.aclose()
