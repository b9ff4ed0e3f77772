"""The jobs' container registration and health check (gathered by :mod:`buttress.composition`).

No ``from __future__ import annotations``: the container reads the factory's annotations as real classes.
"""

from typing import TYPE_CHECKING

from buttress.clock import Clock
from buttress.health_types import CheckResult

if TYPE_CHECKING:
    from buttress.config import Settings
    from buttress.container import Container
    from buttress.observe.health import HealthCheck

__all__ = ["health_checks", "register_services"]


def register_services(container: "Container") -> None:
    """``Jobs``: one per container, on the container's database, clock and settings."""
    from buttress.config import Settings  # noqa: PLC0415 - the factory's annotations
    from buttress.db import Database  # noqa: PLC0415 - the factory's annotations
    from buttress.jobs._jobs import Jobs  # noqa: PLC0415 - SQLAlchemy, only once jobs are asked for

    def default_jobs(settings: Settings, db: Database, clock: Clock) -> Jobs:
        return Jobs(db, settings=settings.jobs, clock=clock)

    container.register(Jobs, default_jobs)


def health_checks(container: "Container", settings: "Settings") -> "list[HealthCheck]":
    """``jobs``: the queue's database answers, no running job is past its lease, some worker heartbeats."""
    from buttress.jobs._jobs import Jobs  # noqa: PLC0415 - SQLAlchemy, only when health is built
    from buttress.observe.health import HealthCheck  # noqa: PLC0415 - only the composition root calls this

    def jobs_check() -> CheckResult:
        jobs = container.resolve(Jobs)
        stats = jobs.stats()
        stalled = sum(queue.stalled for queue in stats.queues.values())
        depth = sum(queue.depth for queue in stats.queues.values())
        fresh = [w for w in stats.workers if w["heartbeat_age"] <= jobs.settings.lease]
        if stalled:
            return CheckResult(
                "warn",
                f"{stalled} running jobs are past their lease: their worker died; "
                "the sweeper takes them back",
            )
        if depth and not fresh:
            return CheckResult("warn", f"{depth} jobs wait and no worker heartbeats: start buttress worker")
        return CheckResult(
            "pass", f"{len(fresh)} workers heartbeat, {depth} jobs waiting", observed_value=depth
        )

    return [HealthCheck("jobs", jobs_check, critical=False)]
