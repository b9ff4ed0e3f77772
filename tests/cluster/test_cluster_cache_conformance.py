"""The cache conformance suite on a real Redis Cluster: the Redis and tiered backends must store alike.

Every test of tests/conformance/test_cache_conformance.py runs here again, unchanged: ``redis_url`` is the
cluster's seed URL (tests/cluster/conftest.py) and ``kind`` drops the memory backend, which has no Redis.
The suite's real-time TTL is 0.3 s here instead of 0.1 s: a test sets a key with it and expects the next
calls to see the key, and on a loaded machine (six cluster nodes on two shared cores) a few calls can
take longer than 0.1 s.
"""

from __future__ import annotations

import pytest

from tests.conformance import test_cache_conformance as suite
from tests.conformance.test_cache_conformance import *  # noqa: F403 - the suite itself, collected here


@pytest.fixture(params=["redis", "tiered"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _slower_short_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite, "SHORT", 0.3)
