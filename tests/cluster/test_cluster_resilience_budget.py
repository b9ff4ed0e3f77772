"""The budget conformance suite (tests/conformance/test_budget_conformance.py) on a real Redis Cluster.

Its Redis cases run unchanged: tests/cluster/conftest.py points ``redis_url`` at the session's cluster.
"""

from tests.conformance.test_budget_conformance import *  # noqa: F403
