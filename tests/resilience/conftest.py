"""Fixtures shared by the resilience tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.resilience._observed import Observed


@pytest.fixture
def observed() -> Iterator[Observed]:
    observed = Observed()
    yield observed
    observed.bus.close()
