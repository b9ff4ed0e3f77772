"""Test tooling for users of buttress: a fault-injecting HTTP upstream on loopback.

``Upstream`` runs real HTTP/1.1 servers on 127.0.0.1 ("domains", one port each) that answer, slow down,
fail with 5xx or 429, reset connections, hang or refuse connections on purpose, and the same way every run
for a given seed. The pytest fixtures live in :mod:`buttress.testing.pytest_plugin`; importing this
package does not import pytest. :mod:`buttress.testing.jobs` runs a job worker in a test (``buttress[db]``).
"""

from buttress.testing._domain import Domain
from buttress.testing._fault import Fault, Latency
from buttress.testing._upstream import Upstream

__all__ = ["Domain", "Fault", "Latency", "Upstream"]
