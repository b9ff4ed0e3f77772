"""The breaker conformance suite (tests/conformance/test_breaker_conformance.py) on a real Redis Cluster.

Its Redis cases run unchanged: tests/cluster/conftest.py points ``redis_url`` at the session's cluster.
"""

from tests.conformance.test_breaker_conformance import *  # noqa: F403
