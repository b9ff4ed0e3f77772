"""The read-replica tests with the primary and the standby each behind a PgBouncer of its own.

The cluster's own helpers (pausing replay, reading positions) stay direct; only buttress goes through the
poolers, with ``db.pooler = pgbouncer`` for the primary and the replica alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests._pg_cluster import PgCluster
from tests._pgbouncer import PgBouncer
from tests.db import test_replicas as suite
from tests.db.conftest import need_pg_binaries
from tests.pgbouncer._borrow import borrow

LEFT_OUT = {
    "test_10000_write_then_read_pairs_with_replay_paused_at_random_read_nothing_stale": "25 s direct; the "
    "1,000 async pairs below cover the same race through the poolers",
    "test_a_standby_killed_mid_statement_loses_no_read_and_opens_the_breaker": "behind a pooler a dead "
    "standby is no connection error: PgBouncer keeps the client waiting for a server up to its "
    "query_wait_timeout (docs/pgbouncer.md), so the breaker's trigger is that timeout, not this test's",
}
globals().update(borrow(suite, {"replicated"}, LEFT_OUT))


class PooledCluster:
    """``cluster`` with its two URLs pointed at a PgBouncer each; everything else is the cluster's own."""

    def __init__(self, cluster: PgCluster, primary: PgBouncer, standby: PgBouncer) -> None:
        self.cluster = cluster
        self.primary_url = primary.url(cluster.primary_url)
        self.standby_url = standby.url(cluster.standby_url)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cluster, name)


@pytest.fixture(scope="module")
def pooled_cluster() -> Iterator[PooledCluster]:
    need_pg_binaries()
    with (
        PgCluster() as cluster,
        PgBouncer(cluster.primary_url) as primary,
        PgBouncer(cluster.standby_url) as standby,
    ):
        yield PooledCluster(cluster, primary, standby)


@pytest.fixture
def replicated(pooled_cluster: PooledCluster) -> Iterator[suite.Replicated]:
    pooled_cluster.cluster.reset()
    made = suite.Replicated(pooled_cluster, pooler="pgbouncer")  # type: ignore[arg-type]
    try:
        yield made
    finally:
        made.close()
