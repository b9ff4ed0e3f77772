"""Lua scripts kept as ``.lua`` files in this package, composed from shared fragments, run by SHA.

A script file is ``lua/<name>.lua``; a line ``--@include <fragment>`` in it is replaced by
``lua/include/<fragment>.lua`` (fragments may include others). Every script that needs the time includes
``now`` (:data:`LUA_NOW`). The SHA1 is computed once, when the :class:`Script` is made; the connection
sends ``EVALSHA`` and, on ``NOSCRIPT`` (a restarted Redis, a ``SCRIPT FLUSH``), ``SCRIPT LOAD`` and the
call again.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib.resources import files

__all__ = ["LUA_NOW", "Script", "include", "script_names"]

_LUA = files(__package__ or "buttress._redis") / "lua"
_INCLUDE = re.compile(r"^--@include (\S+)[ \t]*$", re.MULTILINE)


@cache
def include(name: str) -> str:
    """The text of fragment ``lua/include/<name>.lua``, its own includes expanded."""
    return _expand((_LUA / "include" / f"{name}.lua").read_text(encoding="utf-8"), (name,))


def _expand(source: str, seen: tuple[str, ...]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match[1]
        if name in seen:
            raise ValueError(f"Lua include cycle: {' -> '.join((*seen, name))}")
        text = (_LUA / "include" / f"{name}.lua").read_text(encoding="utf-8")
        return _expand(text, (*seen, name)).rstrip("\n")

    return _INCLUDE.sub(replace, source)


def script_names() -> list[str]:
    """The names of every script shipped in ``lua/`` (fragments in ``lua/include/`` are not scripts)."""
    return sorted(p.name[:-4] for p in _LUA.iterdir() if p.is_file() and p.name.endswith(".lua"))


LUA_NOW = "\n" + include("now")
"""Lua prelude: ``now`` in integer microseconds, from ``ARGV[1]`` if the caller passed one, else ``TIME``.

Every script that includes it takes ``now`` as its first argument (``RedisConnection.now_arg``). Keep
times in integer microseconds (exact in a Lua double) and write numbers with ``fmt(x)``: ``tostring``
keeps only 14 significant digits (0.1 ms of an epoch time) and Redis truncates a Lua number reply to an
integer.
"""


class Script:
    """A Lua script known by its SHA1 (computed once), loaded into Redis on the first ``NOSCRIPT``.

    ``Script.file("breaker_record")`` reads ``lua/breaker_record.lua``; ``Script(source)`` takes the
    text itself (tests, one-off tools).
    """

    __slots__ = ("name", "sha", "source")

    def __init__(self, source: str, name: str = "") -> None:
        self.source = _expand(source, ())
        self.name = name
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    @classmethod
    def file(cls, name: str) -> Script:
        """The script in ``lua/<name>.lua``, includes expanded."""
        return cls((_LUA / f"{name}.lua").read_text(encoding="utf-8"), name)

    def __repr__(self) -> str:
        return f"Script({self.name or 'inline'}, sha={self.sha[:12]})"
