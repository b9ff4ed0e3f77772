"""Realtime: bus events carried to browsers and services over WebSocket and SSE, with resume.

Being built (issue 17); the public names are gathered here as their modules land.
"""

from buttress.realtime._entry import Entry, Position, Replay
from buttress.realtime._log import MemoryTopicLog, TopicLog

__all__ = ["Entry", "MemoryTopicLog", "Position", "Replay", "TopicLog"]
