"""The Redis layer: the one place buttress connects to Redis (cache, resilience and events all use it).

- URLs: :func:`check_url` (a ValidationError naming the field), :func:`mask_url` (the password masked in
  every message and repr) and :func:`topology` (standalone, Sentinel or cluster, by the URL's scheme).
- Keys: every owner takes a ``prefix`` (:func:`check_prefix`); keys are ``<prefix>:<...>``.
- :class:`RedisConnection`: a sync pool and one ``redis.asyncio`` client per event loop, with one timeout
  default, one pool policy and one reconnect rule (:mod:`buttress._redis._client`); ``run``/``arun`` a
  :class:`Script`, ``call``/``drive`` commands and plans, :data:`UNAVAILABLE` while Redis is down
  (:class:`~buttress._outage.OutageTracker`), ``on_down``/``on_up`` for the owner's reporting, ``check()``.
- :class:`PubSubConnections`: dedicated sender and listener connections (the event transport's, and
  :class:`Subscriber`'s: a listener thread on one pattern that reports gaps, for state pushed to processes).
- :class:`Script`: Lua kept as ``.lua`` files in ``lua/``, with ``--@include`` fragments (:data:`LUA_NOW`).

Importing this package does not import redis-py; the first connection does, through the ``redis`` extra.
"""

from __future__ import annotations

from buttress._redis._client import DEFAULT_TIMEOUT, POOL_SIZE, POOL_WAIT, ping, plain_client
from buttress._redis._connection import UNAVAILABLE, Plan, RedisConnection, execute, pipeline
from buttress._redis._pubsub import PubSubConnections
from buttress._redis._script import LUA_NOW, Script, script_names
from buttress._redis._subscriber import Subscriber, glob_escape
from buttress._redis._url import (
    EXAMPLE_URL,
    SCHEMES,
    Topology,
    check_prefix,
    check_url,
    hosts,
    mask_text,
    mask_url,
    topology,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXAMPLE_URL",
    "LUA_NOW",
    "POOL_SIZE",
    "POOL_WAIT",
    "SCHEMES",
    "UNAVAILABLE",
    "Plan",
    "PubSubConnections",
    "RedisConnection",
    "Script",
    "Subscriber",
    "Topology",
    "check_prefix",
    "check_url",
    "execute",
    "glob_escape",
    "hosts",
    "mask_text",
    "mask_url",
    "ping",
    "pipeline",
    "plain_client",
    "script_names",
    "topology",
]
