"""The job types, queues and schedules a program defines: code, gathered where workers find them.

``@job`` and ``@schedule`` run at import time, before any container exists, and describe code the way
a route table does, so the definitions live in one module-level :data:`REGISTRY`; what runs (the
store, the workers) lives in the container. A worker imports the modules that define its jobs
(``buttress worker --import myapp.jobs``) and finds them here by name.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buttress.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from buttress.jobs._task import Task

__all__ = ["REGISTRY", "QueueSpec", "Registry", "check_name", "define_queue"]


def check_name(value: object, field: str) -> str:
    """A queue, task or schedule name: non-empty text of at most 200 characters without control characters."""
    if not isinstance(value, str) or not value or len(value) > 200 or not value.isprintable():
        raise ValidationError(
            f"{field} must be a printable name of 1 to 200 characters, got {value!r}; e.g. 'emails'",
            field=field,
        )
    return value


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue's bounds: at most ``max_size`` pending jobs, at most ``concurrency`` running (everywhere)."""

    name: str
    max_size: int | None = None
    concurrency: int | None = None


def _check_bound(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{field} must be a positive int or None, got {value!r}; e.g. 100", field=field)
    return value


class Registry:
    """Job types by name, queue bounds by name, schedules by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tasks: dict[str, Task[..., Any]] = {}
        self.queues: dict[str, QueueSpec] = {}
        self.schedules: dict[str, Any] = {}

    def add(self, task: Task[..., Any]) -> None:
        """Register ``task``; a second, different function under the same name is an error."""
        with self._lock:
            known = self.tasks.get(task.name)
            if known is not None and known.fn is not task.fn and _origin(known.fn) != _origin(task.fn):
                raise ValidationError(
                    f"two job functions are named {task.name!r} "
                    f"({_origin(known.fn)} and {_origin(task.fn)}); "
                    "give one of them @job(name=...)",
                    field="name",
                )
            self.tasks[task.name] = task

    def task(self, name: str) -> Task[..., Any]:
        """The job type called ``name``."""
        try:
            return self.tasks[name]
        except KeyError:
            raise NotFoundError(
                "job type",
                name,
                message=f"no job type {name!r} is defined in this process; import the module that defines it "
                "(buttress worker --import ...)",
            ) from None

    def define_queue(
        self, name: str, *, max_size: int | None = None, concurrency: int | None = None
    ) -> QueueSpec:
        """Bound queue ``name``; see :func:`define_queue`."""
        spec = QueueSpec(
            check_name(name, "name"),
            _check_bound(max_size, "max_size"),
            _check_bound(concurrency, "concurrency"),
        )
        with self._lock:
            self.queues[spec.name] = spec
        return spec

    def bounds(self) -> dict[str, int]:
        """``max_size`` of each bounded queue."""
        return {name: spec.max_size for name, spec in self.queues.items() if spec.max_size is not None}

    def queue_limits(self) -> dict[str, int]:
        """``concurrency`` of each limited queue."""
        return {name: spec.concurrency for name, spec in self.queues.items() if spec.concurrency is not None}


def _origin(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


REGISTRY = Registry()
"""The definitions of this program (``@job``, ``@schedule`` and :func:`define_queue` add to it)."""


def define_queue(name: str, *, max_size: int | None = None, concurrency: int | None = None) -> QueueSpec:
    """Bound the queue ``name``: enqueuing past ``max_size`` pending jobs raises ``QueueFull`` and stores
    nothing; at most ``concurrency`` of its jobs run at once across every worker.

    Define it in code every enqueuing and working process imports (the bounds are checked where jobs are
    deferred and fetched).
    """
    return REGISTRY.define_queue(name, max_size=max_size, concurrency=concurrency)
