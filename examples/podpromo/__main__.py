"""``python -m examples.podpromo serve|worker``: the app on uvicorn, or one worker process."""

from __future__ import annotations

import argparse

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run what it names."""
    parser = argparse.ArgumentParser(prog="python -m examples.podpromo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the app (uploads, job status, /ops) on uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    worker = commands.add_parser("worker", help="run one worker process (episode jobs, cleanup schedule)")
    worker.add_argument("--concurrency", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "serve":
        import uvicorn  # noqa: PLC0415 - only the server needs it

        from examples.podpromo.app import create_app  # noqa: PLC0415 - the worker does not need FastAPI

        uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    else:
        from examples.podpromo.worker import run_worker  # noqa: PLC0415 - the server does not need it

        run_worker(args.concurrency)


if __name__ == "__main__":
    main()
