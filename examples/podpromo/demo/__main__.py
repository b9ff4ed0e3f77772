"""``python -m examples.podpromo.demo [--episodes N] [--redis] [--json]``: see the package docstring."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from examples.podpromo.demo.run import Options, run_demo

__all__ = ["main"]

DEFAULTS = Options()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; print the report (rich tables, or JSON only with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m examples.podpromo.demo", description=__doc__)
    parser.add_argument(
        "--episodes", type=int, default=DEFAULTS.episodes, help="accepted uploads (default 24)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument(
        "--lease", type=float, default=DEFAULTS.lease, help="job lease in seconds (default 3)"
    )
    parser.add_argument("--redis", action="store_true", help="start a throwaway redis-server, kill it midway")
    parser.add_argument("--json", action="store_true", help="print only the report, as JSON, on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (database, files, logs)")
    args = parser.parse_args(argv)
    options = Options(
        episodes=args.episodes,
        seed=args.seed,
        lease=args.lease,
        redis=args.redis,
        live=not args.json,
        keep=args.keep,
    )
    console = Console()
    if not console.is_terminal:  # piped to a file or a pager: wide enough for the report's tables
        console = Console(width=120)
    report = run_demo(options, None if args.json else console)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        from examples.podpromo.demo.report import render  # noqa: PLC0415 - rich tables only when shown

        render(report, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
