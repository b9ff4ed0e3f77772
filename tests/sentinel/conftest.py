"""One Sentinel deployment per module (a primary, a replica, three sentinels), with passwords on both sides.

``redis_url`` is overridden here, so a suite imported into this folder (the cache conformance suite) runs
through the Sentinel URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._redis_sentinel import SentinelDeployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelDeployment]:
    directory = tmp_path_factory.mktemp("sentinel")
    with SentinelDeployment(
        directory, password="data-s3cret", sentinel_password="sentinel-s3cret"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def redis_url(deployment: SentinelDeployment) -> str:
    """The Sentinel URL (database 0 of this module's own deployment)."""
    return deployment.url()
