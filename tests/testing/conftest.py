"""Fixtures for the upstream tests: the user-facing plugin, plus both server modes side by side."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import httpx
import pytest

from buttress.testing import Fault, Upstream
from buttress.testing._upstream import Mode

_tokens = itertools.count()


def _preset(mode: Mode) -> Upstream:
    """An upstream with domains and routes set before start (both modes must carry them over)."""
    up = Upstream(seed=0, mode=mode)
    up.add("default")
    up.add("preset", Fault(status=203))
    up.route("preset", "/teapot", Fault(errors={418: 1.0}))
    return up


@pytest.fixture(scope="session")
def process_upstream() -> Iterator[Upstream]:
    """One process-mode upstream for the session: spawning a child costs a second or so."""
    with _preset("process") as up:
        yield up


@pytest.fixture(params=["thread", "process"])
def served(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    """A running upstream of each mode; the process one is shared, so tests name domains with ``unique``."""
    if request.param == "process":
        yield request.getfixturevalue("process_upstream")
        return
    with _preset("thread") as up:
        yield up


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Domain names no other test uses (the process-mode upstream outlives a test)."""
    token = next(_tokens)
    return lambda base: f"{base}-{token}"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http
