"""``python -m examples.astrology serve [--host H] [--port P]``: the API under uvicorn and a job worker in a
thread, on embedded defaults (SQLite ``./buttress.db``, memory cache) unless ``BUTTRESS_*`` variables say
otherwise."""

from __future__ import annotations

import argparse
import os
import secrets
import sys

import uvicorn

from buttress.config import get_settings
from buttress.jobs import get_jobs

from .app import create_app
from .batch import QUEUE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.astrology", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (and its /ops routes) under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="run batches in `buttress worker` instead")
    args = parser.parse_args(argv)
    if not os.environ.get("BUTTRESS_SERVER__JWT_KEY"):
        # Reading channels need a signing key; one made here lives as long as this process (never printed).
        os.environ["BUTTRESS_SERVER__JWT_KEY"] = secrets.token_urlsafe(48)
        print("BUTTRESS_SERVER__JWT_KEY is unset: a random key signs this process's channel tokens")
    settings = get_settings()
    print(f"astrology on http://{args.host}:{args.port} ({settings.app.environment}); ops under /ops")
    app = create_app(settings)
    if args.no_worker:
        uvicorn.run(app, host=args.host, port=args.port, ws="websockets-sansio")
        return 0
    with get_jobs().worker(queues=[QUEUE]).running():  # `buttress worker --import ...` in production
        uvicorn.run(app, host=args.host, port=args.port, ws="websockets-sansio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
