"""A worker process for the multi-process job tests: ``python _proc_worker.py URL OPTIONS_JSON``.

It imports the tests' job module, builds ``Jobs`` on the given database with the given settings and runs
one worker until SIGTERM (graceful) or SIGKILL. It does not use the ``buttress worker`` command, so the
tests exercise the worker itself.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def main() -> None:
    url, options = sys.argv[1], json.loads(sys.argv[2])
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.jobs imports

    import tests.jobs._proc_jobs  # noqa: F401 - defines the jobs

    from buttress.config import DbSettings, JobsSettings
    from buttress.db import Database
    from buttress.jobs import Jobs

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(name)s %(message)s")
    database = Database(url, settings=DbSettings(**options.get("db", {})))
    jobs = Jobs(database, settings=JobsSettings(**options.get("settings", {})))
    worker = jobs.worker(
        queues=options.get("queues"), concurrency=options.get("concurrency", 4), tasks=options.get("tasks")
    )
    worker.run_sync()
    jobs.db.close()


if __name__ == "__main__":
    main()
