"""Fixtures for the data-layer tests: a throwaway primary with a hot standby, built once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._pg_cluster import PgCluster, missing_reason
from tests.conftest import services_required


def need_pg_binaries() -> None:
    """Skip when the PostgreSQL 15 server binaries are missing; under BUTTRESS_REQUIRE_SERVICES=1, fail."""
    reason = missing_reason()
    if reason is None:
        return
    if services_required():
        pytest.fail(reason + " and BUTTRESS_REQUIRE_SERVICES=1 turns the skip into a failure", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def pg_cluster_module() -> Iterator[PgCluster]:
    """A PostgreSQL 15 primary and a streaming hot standby, started once per module and always removed."""
    need_pg_binaries()
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_cluster(pg_cluster_module: PgCluster) -> PgCluster:
    """The module's cluster, streaming again: replay resumed and the standby restarted if a test killed it."""
    pg_cluster_module.reset()
    return pg_cluster_module
