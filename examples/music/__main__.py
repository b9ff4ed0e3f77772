"""``python -m examples.music import N`` (bulk-save N made-up plays), ``summary USER`` (cached summary)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from buttress.db import Database
from examples.music.app import import_plays, music_container, summary_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.music", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("import", help="generate and bulk-save N plays")
    load.add_argument("n", type=int)
    load.add_argument("--seed", type=int, default=0)
    commands.add_parser("summary", help="print a user's top tracks").add_argument("user")
    args = parser.parse_args(argv)
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
