"""``python -m examples.poster check | post-now | worker``: startup checks, one post now, the schedules."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from urllib.parse import urlsplit

from buttress.config import get_settings
from buttress.errors import ButtressError, ConfigError
from buttress.jobs import get_jobs
from buttress.observe.health_cli import health_command
from buttress.observe.logging import configure_logging_from_settings
from buttress.testing import Upstream
from examples.poster.checks import poster_health
from examples.poster.config import NETWORKS
from examples.poster.jobs import QUEUE, compose, get_poster


@contextmanager
def fake_networks() -> Iterator[None]:
    """Both networks played by a local fault-injecting upstream, for trying the example without accounts."""
    with Upstream() as upstream:
        for spec in NETWORKS:
            upstream.add(spec.name)
            os.environ[f"POSTER_{spec.name.upper()}_URL"] = upstream.url(spec.name).rstrip("/")
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.poster", description=__doc__)
    parser.add_argument("command", choices=["check", "post-now", "worker"])
    parser.add_argument("--fake-networks", action="store_true", help="post to a local fake upstream")
    args = parser.parse_args(argv)
    configure_logging_from_settings(get_settings(), stream=sys.stderr)  # BUTTRESS_LOGGING__FORMAT/LEVEL
    with fake_networks() if args.fake_networks else nullcontext():
        return run(args.command)


def run(command: str) -> int:
    try:
        poster = get_poster()  # reads POSTER_*: a missing required key stops here, before any request
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    code = health_command(registry=poster_health(poster.config), group="startup")
    if command == "check" or code != 0:
        return code
    if command == "post-now":
        for network, status in poster.post_all(compose("morning", 0)).items():
            print(f"{network}: posted ({status})")
        return 0
    try:
        get_jobs().worker(queues=[QUEUE]).run_sync()  # runs the schedules until SIGTERM
    except ButtressError as error:  # the job queue's database cannot be opened: one line, not a traceback
        print(database_problem(error), file=sys.stderr)
        return 1
    return 0


def database_problem(error: ButtressError) -> str:
    """One line naming the setting and the fix; the URL's password, if any, is never part of it."""
    message = str(error)
    url = os.environ.get("BUTTRESS_DATABASE_URL", "")
    password = urlsplit(url).password if "://" in url else None
    if password:
        message = message.replace(password, "***")
    return (
        f"error: the job queue's database cannot be opened ({message}); check BUTTRESS_DATABASE_URL "
        "(a reachable PostgreSQL or a writable sqlite:/// path), or unset it to use ./buttress.db"
    )


if __name__ == "__main__":
    sys.exit(main())
