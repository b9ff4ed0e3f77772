"""Redis trouble at the moment the worker dies: kill our own redis-server, or drop a user's clients.

The demo never kills a Redis it did not start. With ``--redis`` it SIGKILLs its own ``redis-server``,
keeps it down for a moment, restarts it on the same port and measures how long Redis was unreachable.
With the user's ``BUTTRESS_REDIS_URL`` it sends ``CLIENT KILL TYPE normal`` instead: every client
connection drops at once and each process must reconnect by itself; the server and its data stay.
"""

from __future__ import annotations

import os
import time
from typing import Any

from examples.podpromo.demo.processes import RedisServer

__all__ = ["RedisChaos"]


class RedisChaos:
    """What the demo does to Redis midway, and what it cost."""

    def __init__(self, server: RedisServer | None, down_for: float = 1.0) -> None:
        self.server = server
        self.user_url = None if server is not None else os.environ.get("BUTTRESS_REDIS_URL") or None
        self.down_for = down_for
        self.action: str | None = None
        self.dropped = 0
        self.killed_at: float | None = None
        self.degraded: float | None = None

    @property
    def in_use(self) -> str | None:
        """Which Redis the run uses: ``started by the demo``, ``BUTTRESS_REDIS_URL``, or None."""
        if self.server is not None:
            return "started by the demo"
        return "BUTTRESS_REDIS_URL" if self.user_url else None

    def strike(self) -> str | None:
        """Kill our server, or drop the user's server's clients; a line for the event log."""
        if self.server is not None:
            self.server.kill()
            self.killed_at = time.monotonic()
            self.action = "SIGKILL and restart of the demo's own redis-server"
            return f"SIGKILL redis-server (port {self.server.port}); restart in {self.down_for:.1f} s"
        if self.user_url:
            import redis  # noqa: PLC0415 - only with a Redis in use

            client = redis.Redis.from_url(self.user_url)
            try:
                self.dropped = int(client.client_kill_filter(_type="normal", skipme=True))
            finally:
                client.close()
            self.action = "CLIENT KILL TYPE normal on your Redis (the server was not touched)"
            return f"CLIENT KILL TYPE normal: {self.dropped} connections dropped"
        return None

    def tend(self) -> str | None:
        """Restart our server once it has been down long enough; a line for the event log when it is back."""
        if self.server is None or self.killed_at is None or self.degraded is not None:
            return None
        if time.monotonic() - self.killed_at < self.down_for:
            return None
        self.server.start()  # returns once it answers PING
        self.degraded = time.monotonic() - self.killed_at
        return f"redis-server back after {self.degraded:.2f} s"

    def summary(self, logs: list[str]) -> dict[str, Any]:
        """The report's Redis section; the log lines about Redis of the app and the workers, and the first."""
        lines = [line for text in logs for line in text.splitlines() if "redis" in line.lower()]
        return {
            "in_use": self.in_use,
            "action": self.action,
            "connections_dropped": self.dropped if self.user_url else None,
            "degraded_seconds": round(self.degraded, 2) if self.degraded is not None else None,
            "log_lines_about_redis": len(lines),
            "first_log_line": lines[0][:300] if lines else None,
        }
