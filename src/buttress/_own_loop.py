"""Run a coroutine to the end from sync code, even where this thread already runs an event loop.

Foundation, so every layer may use it: cache warmers started from an async app and the demo both need it, and
neither should reach into the other's private modules for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_on_own_loop"]

T = TypeVar("T")


def run_on_own_loop(main: Coroutine[Any, Any, T], *, thread_name: str) -> T:
    """Run ``main`` on a fresh event loop in a thread of its own and return its result (or raise its error).

    Works where a loop already runs in the calling thread (a notebook, an async app), where
    ``asyncio.run`` refuses.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(main))
        except BaseException as error:  # noqa: BLE001 - handed to the calling thread as it is
            failure.append(error)

    worker = threading.Thread(target=target, name=thread_name, daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]
