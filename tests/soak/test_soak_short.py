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


def test_the_coordinator_registers_no_job_in_the_process_that_runs_it() -> None:
    """Only the soak's workers import its jobs: a schedule registered in the test process would fire into
    every later test's worker (it did, and four dashboard tests waited for the soak's ticks)."""
    import benchmarks.soak
    import benchmarks.soak_checks
    import benchmarks.soak_report

    from buttress.jobs import REGISTRY

    modules = (benchmarks.soak, benchmarks.soak_checks, benchmarks.soak_report)
    assert all(module.__name__ for module in modules)
    assert not [name for name in REGISTRY.schedules if name.startswith("soak")]
    assert not [name for name in REGISTRY.tasks if name.startswith("benchmarks.soak")]
