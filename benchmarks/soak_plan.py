"""The soak's fixed figures, in a module with no side effects.

The coordinator and the checks read them without importing :mod:`benchmarks.soak_jobs` (whose ``@job``
and ``@schedule`` register in the process's job registry: a test process that imported it would then
fire the soak's schedule into every later test's worker) or :mod:`benchmarks.soak_node`.
"""

from __future__ import annotations

from typing import Final

LIMIT_RATE: Final = 20.0  # calls per second, across every node
LIMIT_BURST: Final = 5
BREAKER_NAME: Final = "soak.upstream"
BREAKER_FAILURES: Final = 5
BREAKER_OPEN_S: Final = 2.0
CACHE_KEYS: Final = 4
TICK_EVERY: Final = 2.0
TICK_SCHEDULE: Final = "soak.tick"
