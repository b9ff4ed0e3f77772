"""The cache conformance suite (tests/conformance/test_cache_conformance.py) through a Sentinel URL.

Its tests and fixtures run here unchanged, for the Redis and tiered backends only; ``redis_url`` is this
folder's (conftest.py), so every backend reaches the primary through the sentinels.
"""

from __future__ import annotations

import pytest

from tests.conformance import test_cache_conformance as suite

globals().update(
    {
        name: value
        for name, value in vars(suite).items()
        if name.startswith("test_") or name in {"subject", "ns", "serializer", "typed"}
    }
)


@pytest.fixture(params=["redis", "tiered"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
