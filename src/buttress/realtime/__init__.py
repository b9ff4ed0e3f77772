"""Realtime: bus events carried to browsers and services over WebSocket and SSE, with resume.

::

    from buttress.realtime import get_realtime, realtime_router

    app.include_router(realtime_router(public=["news.**"]), prefix="/realtime")
    get_realtime().publish("news.posted", {"title": "..."})  # from any process when Redis is configured

Every recorded event gets an id (``<epoch>-<position>``) in a topic log (a memory ring, or a Redis
Stream that every process reads); a client reconnecting with the last id it saw gets what it missed
with no gap and no duplicate, or a ``reset`` message saying that is no longer possible. Each
connection has a bounded queue and its own writer, so a slow client never slows the others.
"""

from buttress._lazy import lazy_exports

TYPE_CHECKING = False  # see buttress/__init__.py
if TYPE_CHECKING:
    from buttress.realtime._auth import Authorize, Identity, covers
    from buttress.realtime._entry import Entry, Position, Replay, parse_id
    from buttress.realtime._log import MemoryTopicLog, TopicLog
    from buttress.realtime._provide import get_realtime, health_checks, register_services, set_realtime
    from buttress.realtime._realtime import Realtime, create_realtime
    from buttress.realtime._redis_log import RedisTopicLog
    from buttress.realtime._router import realtime_router

# Loaded on first use: the router needs FastAPI (the [server] extra), the Redis log redis-py.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["Authorize", "Identity", "covers"], "buttress.realtime._auth"),
        **dict.fromkeys(["Entry", "Position", "Replay", "parse_id"], "buttress.realtime._entry"),
        **dict.fromkeys(["MemoryTopicLog", "TopicLog"], "buttress.realtime._log"),
        **dict.fromkeys(
            ["get_realtime", "health_checks", "register_services", "set_realtime"],
            "buttress.realtime._provide",
        ),
        **dict.fromkeys(["Realtime", "create_realtime"], "buttress.realtime._realtime"),
        "RedisTopicLog": "buttress.realtime._redis_log",
        "realtime_router": "buttress.realtime._router",
    },
)

__all__ = [
    "Authorize",
    "Entry",
    "Identity",
    "MemoryTopicLog",
    "Position",
    "Realtime",
    "RedisTopicLog",
    "Replay",
    "TopicLog",
    "covers",
    "create_realtime",
    "get_realtime",
    "health_checks",
    "parse_id",
    "realtime_router",
    "register_services",
    "set_realtime",
]
