"""The realtime endpoints on the ops server: ``{prefix}/realtime/ws`` and ``{prefix}/realtime/sse``.

They check the ops server's credentials (the admin token, or a JWT signed with ``server.jwt_key``). A
client with one may follow any topic; an anonymous client only the ops snapshot feed, which then
carries what an anonymous reader of the JSON routes may see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter

from buttress.realtime import Identity, covers, realtime_router
from buttress.server._ops import Ops

__all__ = ["SNAPSHOT_TOPIC", "realtime_routes"]

SNAPSHOT_TOPIC = "ops.snapshot"


def _ops_authorize(identity: Identity | None, pattern: str) -> bool:
    return identity is not None or covers(SNAPSHOT_TOPIC, pattern)


def realtime_routes(
    ops: Ops, snapshot: Callable[[bool], Mapping[str, Any]] | None = None, *, interval: float = 1.0
) -> APIRouter:
    """The realtime router of the ops server; ``snapshot(admin)`` feeds ``ops.snapshot`` when given."""
    feeds = {SNAPSHOT_TOPIC: (snapshot, interval)} if snapshot is not None else None
    return realtime_router(auth=ops.auth, authorize=_ops_authorize, feeds=feeds)
