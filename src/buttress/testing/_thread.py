"""Thread mode: the engine's event loop runs in a daemon thread of the test's own process.

Control calls (add a domain, change a fault, read counters) hop onto the loop with
``run_coroutine_threadsafe`` and wait for the answer, so they see a consistent state.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

from buttress.testing._domain import Domain, Stats
from buttress.testing._engine import Engine
from buttress.testing._fault import Fault

__all__ = ["CONTROL_TIMEOUT", "ThreadRunner"]

T = TypeVar("T")
CONTROL_TIMEOUT: Final = 30.0
"""Seconds a control call may take before the caller gives up (a wedged server, never a slow one)."""


class ThreadRunner:
    """An :class:`Engine` on an event loop in a daemon thread."""

    def __init__(self, seed: int) -> None:
        self._engine = Engine(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="buttress-upstream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CONTROL_TIMEOUT)

    def add(self, domain: Domain, port: int) -> None:
        self._call(self._engine.add(domain, port))

    def set_fault(self, name: str, fault: Fault, path: str | None) -> None:
        self._call(self._engine.set_fault(name, fault, path))

    def reset_counts(self) -> None:
        self._call(self._engine.reset_counts())

    def snapshot(self) -> Stats:
        return self._call(self._engine.snapshot())

    def stop(self) -> Stats:
        """Close every domain, stop the loop and join the thread; the final counters come back."""
        try:
            return self._call(self._engine.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CONTROL_TIMEOUT)
            self._loop.close()
