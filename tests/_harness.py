"""What every throwaway-server harness of the tests shares: a context manager that stops what it started."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Self

__all__ = ["Harness", "kill_all"]


class Harness:
    """``with Server(...) as server:`` starts it, and stops it on the way out; a start that fails half
    way stops what it had started before the error propagates (no server outlives a failed fixture)."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def kill_all(processes: dict[int, subprocess.Popen[bytes]]) -> None:
    """SIGKILL every process still running, reap them all, and forget them."""
    for process in processes.values():
        if process.poll() is None:
            process.kill()
    for process in processes.values():
        process.wait(timeout=10)
    processes.clear()
