"""The session's Redis Cluster: started once for tests/cluster, killed at the end.

Skips when redis-server is not installed (fails instead under BUTTRESS_REQUIRE_SERVICES=1, like the
other service fixtures). ``redis_url`` is overridden here so suites written for one Redis (the cache and
event transport conformance suites) run unchanged against the cluster.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests._redis_cluster import RedisCluster
from tests.conftest import services_required


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A 3-primary/3-replica cluster on spare loopback ports (a failover test leaves it healed)."""
    missing = [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
    if missing:
        message = f"Redis Cluster tests need {' and '.join(missing)} on PATH"
        if services_required():
            pytest.fail(
                message + " and BUTTRESS_REQUIRE_SERVICES=1 turns the skip into a failure", pytrace=False
            )
        pytest.skip(message)
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_url(redis_cluster: RedisCluster) -> str:
    """The cluster's seed URL, in place of the standalone Redis of tests/conftest.py."""
    return redis_cluster.url
