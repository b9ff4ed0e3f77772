"""Process mode: the same server in a child process, so it does not share the GIL with a benchmark.

The parent keeps the ports reserved and forwards each control call over a Pipe; the child runs a
:class:`ThreadRunner` and answers with the result or the exception. Faults are picklable dataclasses.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from buttress.testing._domain import Domain, Stats
from buttress.testing._fault import Fault
from buttress.testing._thread import CONTROL_TIMEOUT, ThreadRunner

__all__ = ["ProcessRunner"]


class ProcessRunner:
    """A :class:`ThreadRunner` in a spawned child process, driven over a Pipe."""

    def __init__(self, seed: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_child_main, args=(child_end, seed), name="buttress-upstream", daemon=True
        )
        self._process.start()
        child_end.close()
        self._exchange(None)  # the child says it is ready

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self._process.pid

    def _exchange(self, message: tuple[str, tuple[Any, ...]] | None) -> Any:
        """Send a command (or nothing, at start-up) and return the child's answer, raising its error."""
        ok: bool = False
        value: Any = None
        with self._lock:
            try:
                if message is not None:
                    self._pipe.send(message)
                answered = self._pipe.poll(CONTROL_TIMEOUT)
                if answered:
                    ok, value = self._pipe.recv()
            except (EOFError, OSError):
                self._process.join(CONTROL_TIMEOUT)
                raise RuntimeError(
                    f"the upstream process exited (exit code {self._process.exitcode}); in mode='process' "
                    "a script must start the upstream under `if __name__ == '__main__':` (spawn start method)"
                ) from None
        if not answered:  # pragma: no cover - only a wedged child gets here
            raise TimeoutError(f"the upstream process did not answer within {CONTROL_TIMEOUT:g}s")
        if not ok:
            raise value
        return value

    def _call(self, command: str, *args: Any) -> Any:
        return self._exchange((command, args))

    def add(self, domain: Domain, port: int) -> None:
        self._call("add", domain, port)

    def set_fault(self, name: str, fault: Fault, path: str | None) -> None:
        self._call("set_fault", name, fault, path)

    def reset_counts(self) -> None:
        self._call("reset_counts")

    def snapshot(self) -> Stats:
        stats: Stats = self._call("snapshot")
        return stats

    def stop(self) -> Stats:
        """Ask the child to stop (final counters back), then terminate it if it lingers, and join it."""
        try:
            stats: Stats = self._call("stop")
        finally:
            self._pipe.close()
            self._process.join(CONTROL_TIMEOUT)
            if self._process.is_alive():  # pragma: no cover - only a wedged child gets here
                self._process.terminate()
                self._process.join()
            self._process.close()
        return stats


def _child_main(pipe: Connection, seed: int) -> None:
    """The child: serve until told to stop or until the parent goes away."""
    runner = ThreadRunner(seed)
    commands: dict[str, Callable[..., Any]] = {
        "add": runner.add,
        "set_fault": runner.set_fault,
        "reset_counts": runner.reset_counts,
        "snapshot": runner.snapshot,
    }
    pipe.send((True, None))
    while True:
        try:
            command, args = pipe.recv()
        except EOFError:  # pragma: no cover - the parent died without stopping us
            runner.stop()
            return
        if command == "stop":
            pipe.send((True, runner.stop()))
            return
        try:
            result = commands[command](*args)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller, who raises it
            result, ok = exc, False
        else:
            ok = True
        pipe.send((ok, result))
