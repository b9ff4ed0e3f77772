"""The shared store conformance suite (tests/conformance/test_resilience_conformance.py) on a Redis Cluster.

Its Redis cases run unchanged: tests/cluster/conftest.py points ``redis_url`` at the session's cluster.
"""

from tests.conformance.test_resilience_conformance import *  # noqa: F403
