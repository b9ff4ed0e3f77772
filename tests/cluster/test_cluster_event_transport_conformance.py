"""The event transport conformance suite on a real Redis Cluster (plain PUBLISH/PSUBSCRIBE on seed nodes).

Every test of tests/conformance/test_event_transport_conformance.py runs here again, unchanged:
``redis_url`` is the cluster's seed URL (tests/cluster/conftest.py) and ``kind`` keeps only Redis.
"""

from __future__ import annotations

import pytest

from tests.conformance.test_event_transport_conformance import *  # noqa: F403 - the suite, collected here


@pytest.fixture(params=["redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
