"""``python -m examples.music import N`` (bulk-save N made-up plays), ``summary USER`` (cached summary)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from buttress.db import Database
from buttress.errors import ButtressError, ConfigError
from examples.music.app import import_plays, music_container, summary_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.music", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("import", help="generate and bulk-save N plays")
    load.add_argument("n", type=int)
    load.add_argument("--seed", type=int, default=0)
    commands.add_parser("summary", help="print a user's top tracks").add_argument("user")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as error:
        print("error: " + "; ".join(problem.describe() for problem in error.problems), file=sys.stderr)
        return 2
    except ButtressError as error:  # BackendUnavailable...: the database cannot be opened
        print(
            f"error: {hide_password(str(error))}; check BUTTRESS_DATABASE_URL (an existing PostgreSQL "
            "database, or a writable sqlite:/// path), or unset it to use ./buttress.db",
            file=sys.stderr,
        )
        return 1


def hide_password(message: str) -> str:
    """``message`` without the database URL's password (a driver may quote the URL)."""
    url = os.environ.get("BUTTRESS_DATABASE_URL", "")
    password = urlsplit(url).password if "://" in url else None
    return message.replace(password, "***") if password else message


def run(args: argparse.Namespace) -> int:
    if args.command == "import":
        done = import_plays(args.n, seed=args.seed)
        print(f"saved {done.rows} plays in {done.chunks} chunk(s)")
        return 0
    print(summary_report(args.user))
    info = music_container().resolve(Database).query_cache.info()
    print(f"query cache: {info['hits']} hit(s), {info['misses']} miss(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
