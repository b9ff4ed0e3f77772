"""Fixtures shared by the cache tests: a fake clock and a memory cache on it."""

from __future__ import annotations

import pytest

from buttress.cache import Cache
from buttress.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> Cache:
    """A memory cache on ``clock`` with a 60 s default TTL (files that need another one define their own)."""
    return Cache(clock=clock, ttl=60)
