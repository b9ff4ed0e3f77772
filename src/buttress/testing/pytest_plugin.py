"""pytest fixtures for a fault-injecting upstream: ``upstream`` and ``upstream_factory``.

Registered as a ``pytest11`` entry point, so installing buttress makes them available; each upstream
is stopped after the test, whatever happened in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest

from buttress.testing._upstream import Mode, Upstream

__all__ = ["UpstreamFactory", "upstream", "upstream_factory"]


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
