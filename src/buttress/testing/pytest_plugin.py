"""pytest fixtures: a fault-injecting upstream (``upstream``, ``upstream_factory``), an in-process job
worker (``job_worker``) and a throwaway file store (``file_store``).

Registered as a ``pytest11`` entry point, so installing buttress makes them available; each upstream
is stopped after the test, whatever happened in it, and so is the worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from buttress.testing._upstream import Mode, Upstream

if TYPE_CHECKING:
    from buttress.files import FileStore
    from buttress.testing.jobs import JobWorker

__all__ = ["UpstreamFactory", "file_store", "job_worker", "upstream", "upstream_factory"]


class UpstreamFactory(Protocol):
    """Makes started upstreams; the fixture stops every one of them at teardown."""

    def __call__(self, *, seed: int = 0, mode: Mode = "thread") -> Upstream: ...


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A started ``Upstream(seed=0)`` in thread mode with the healthy domain ``"default"``."""
    with Upstream(seed=0) as up:
        yield up


@pytest.fixture
def upstream_factory() -> Iterator[UpstreamFactory]:
    """A callable ``(seed=0, mode="thread") -> Upstream`` returning started upstreams."""
    made: list[Upstream] = []

    def make(*, seed: int = 0, mode: Mode = "thread") -> Upstream:
        up = Upstream(seed=seed, mode=mode)
        made.append(up)
        return up.start()

    yield make
    for up in reversed(made):
        up.stop()


@pytest.fixture
def job_worker(tmp_path: Path) -> Iterator[JobWorker]:
    """A job worker running in this process on a temporary SQLite database (``buttress[db]``).

    While the test runs, ``get_jobs()`` and every ``task.defer()`` reach that database; ``job_worker.drain()``
    (or ``await job_worker.adrain()``) waits until no job is due or running, ``job_worker.jobs`` reads them.
    Import the modules that define your jobs before the test starts: the worker runs the job types defined
    when it starts.
    """
    from buttress.testing.jobs import job_worker as running  # noqa: PLC0415 - SQLAlchemy, this fixture only

    with running(tmp_path / "buttress-jobs.db") as worker:
        yield worker


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[FileStore]:
    """A FileStore in a temporary directory with its rows in a temporary SQLite file (``buttress[files]``).

    While the test runs, ``get_files()`` returns it; limits, quotas and allowed types come from the
    process's settings (``BUTTRESS_FILES__*``).
    """
    from buttress.testing.files import file_store as store  # noqa: PLC0415 - libmagic, this fixture only

    with store(tmp_path / "buttress-files") as files:
        yield files
