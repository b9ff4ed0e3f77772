"""PostgreSQL LISTEN: wakes a worker the moment a job is deferred or a running one is cancelled.

One direct connection per worker (not from the pool: a pooled connection would carry the LISTEN to the
next borrower, and a transaction-mode pooler cannot hold it). When it drops, the worker falls back to
polling until it reconnects, with a growing pause; nothing is lost, only woken later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from buttress.jobs._plans import CANCEL_CHANNEL, WAKE_CHANNEL

__all__ = ["listen"]

_log = logging.getLogger("buttress.jobs")


async def listen(
    conninfo: str,
    *,
    on_wake: Callable[[str], None],
    on_cancel: Callable[[int], None],
    on_ready: Callable[[], None] | None = None,
) -> None:
    """``on_wake(queue)`` per defer, ``on_cancel(job_id)`` per cancel of a running job."""
    pause = 0.1
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
                await connection.execute(f"LISTEN {WAKE_CHANNEL}")
                await connection.execute(f"LISTEN {CANCEL_CHANNEL}")
                pause = 0.1
                on_wake("")  # whatever was deferred while we were not listening
                if on_ready is not None:
                    on_ready()
                async for notice in connection.notifies():
                    if notice.channel == CANCEL_CHANNEL:
                        on_cancel(int(notice.payload))
                    else:
                        on_wake(notice.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - polling covers the gap; retry the connection
            _log.warning("jobs: LISTEN connection lost (%s); polling until it is back", type(exc).__name__)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
