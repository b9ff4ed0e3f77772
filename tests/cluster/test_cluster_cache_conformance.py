"""The cache conformance suite on a real Redis Cluster: the Redis and tiered backends must store alike.

Every test of tests/conformance/test_cache_conformance.py runs here again, unchanged: ``redis_url`` is the
cluster's seed URL (tests/cluster/conftest.py) and ``kind`` drops the memory backend, which has no Redis.
"""

from __future__ import annotations

import pytest

from tests.conformance.test_cache_conformance import *  # noqa: F403 - the suite itself, collected here


@pytest.fixture(params=["redis", "tiered"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
