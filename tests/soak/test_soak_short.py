"""The soak's short version (docs/soak.md): 2 nodes for 32 s, every drill once, and every check must pass.

The same code as ``make soak``: real node and worker processes, a real redis-server SIGKILLed and started
again, a real PostgreSQL frozen behind a proxy. Only invariants are asserted (limits, exactly-once, every
node seeing the trip while it lasts, no stale read outside a Redis outage), never a timing of this run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from benchmarks.soak import run

from tests.conftest import services_required


@pytest.mark.timeout(300)
def test_two_nodes_under_chaos_keep_every_promise(database_url: str, tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        if services_required():
            pytest.fail("redis-server is not installed", pytrace=False)
        pytest.skip("redis-server is not installed")

    outcome = run(nodes=2, seconds=32.0, database_url=database_url, keep=tmp_path)  # logs kept for a failure

    drills = [cost.drill.name for cost in outcome.costs]
    assert drills == [
        "baseline (no drill)",
        "worker SIGKILL",
        "breaker trip",
        "Redis restart",
        "database pause",
    ]
    failed = {check.name: check.figure for check in outcome.checks if not check.passed}
    assert not failed, failed
    assert outcome.counts["adm"] > 0
    assert outcome.counts["defer"] > 0
    assert outcome.counts["write"] > 0
