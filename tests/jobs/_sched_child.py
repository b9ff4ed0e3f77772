"""One scheduler process for the multi-process test: ``python -m tests.jobs._sched_child URL``.

Defines the 1-second schedule ``beat``, reconciles, prints ``ready`` and passes until SIGTERM (or SIGKILL).
"""

from __future__ import annotations

import signal
import sys

from buttress.config import JobsSettings
from buttress.db import Database
from buttress.jobs import Jobs, Registry, Scheduler, schedule


def beat() -> None:
    """The scheduled job (no worker runs it here: the test counts the rows the schedulers create)."""


def main(url: str) -> None:
    registry = Registry()
    schedule(every=1, name="beat", catch_up="all", overlap="allow", registry=registry)(beat)
    db = Database(url)
    scheduler = Scheduler(Jobs(db, settings=JobsSettings(auto_migrate=False), registry=registry))
    signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
    scheduler.reconcile()
    print("ready", flush=True)
    try:
        scheduler.run()
    finally:
        db.close()


if __name__ == "__main__":
    main(sys.argv[1])
