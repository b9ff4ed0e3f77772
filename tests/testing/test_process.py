"""Process mode's plumbing: errors in the child come back to the caller; a dead child is reported."""

from __future__ import annotations

import multiprocessing

import pytest

from buttress.testing import Domain, Fault
from buttress.testing._process import ProcessRunner


def test_child_errors_reach_the_caller() -> None:
    runner = ProcessRunner(seed=0)
    with pytest.raises(KeyError, match="nowhere"):
        runner.set_fault("nowhere", Fault(), None)
    runner.add(Domain("alive", Fault(down=True)), 1)
    assert runner.stop().counts == {"alive": {}}


def test_a_dead_child_is_reported() -> None:
    runner = ProcessRunner(seed=0)
    (child,) = [p for p in multiprocessing.active_children() if p.pid == runner.pid]
    child.kill()
    with pytest.raises(RuntimeError, match=r"upstream process exited \(exit code -9\)"):
        runner.snapshot()
    with pytest.raises(RuntimeError, match="exited"):
        runner.stop()
