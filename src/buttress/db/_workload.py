"""The tracker's statements worth advising on: the costliest in total time, and every slow one.

Ranking by total time puts "slow" and "frequent" on one scale (a 2 ms query run 50,000 times outranks a
300 ms one run twice). Only statements that read are planned for indexes; the raw sample (statement and
parameters) stays in memory and goes to the advisor, never to a rendering.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from buttress.db._advice import Sample

if TYPE_CHECKING:
    from buttress.db._tracking import QueryTracker

__all__ = ["WORKLOAD_SIZE", "workload"]

WORKLOAD_SIZE: Final = 20
"""How many of the costliest statements an advice run plans, besides the slow log's."""

_ADVISED: Final = frozenset({"select", "update", "delete"})


def workload(queries: QueryTracker, size: int = WORKLOAD_SIZE) -> list[Sample]:
    """Samples of the ``size`` statements with the most total time, plus those in the slow log."""
    wanted = [stats.fingerprint for stats in queries.top(size, by="total")]
    wanted += [entry.fingerprint for entry in queries.slow()]
    samples: list[Sample] = []
    for print_ in dict.fromkeys(wanted):
        stats = queries.get(print_)
        raw = queries.sample(print_)
        if stats is None or raw is None or stats.operation not in _ADVISED:
            continue
        samples.append(
            Sample(
                raw.statement,
                raw.parameters,
                calls=stats.calls,
                total_seconds=stats.total_seconds,
                fingerprint=stats.sql,  # advice names it as /ops/db does: normalised SQL, readable
            )
        )
    return samples
