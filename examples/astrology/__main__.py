"""``python -m examples.astrology serve [--host H] [--port P]``: the API under uvicorn and a job worker in a
thread, on embedded defaults (SQLite ``./buttress.db``, memory cache) unless ``BUTTRESS_*`` variables say
otherwise."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from urllib.parse import urlsplit

import uvicorn

from buttress.config import get_settings
from buttress.errors import ButtressError
from buttress.jobs import get_jobs

from .app import create_app
from .batch import QUEUE
from .store import database

DATABASE_FIX = (
    "check BUTTRESS_DATABASE_URL (a reachable PostgreSQL, a writable sqlite:/// path), "
    "or unset it for ./buttress.db"
)


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
    try:
        database().check()  # one SELECT 1 now: a bad BUTTRESS_DATABASE_URL stops here, at once
    except ButtressError as error:
        print(f"error: {hide_password(str(error))}; {DATABASE_FIX}", file=sys.stderr)
        return 1
    print(f"astrology on http://{args.host}:{args.port} ({settings.app.environment}); ops under /ops")
    app = create_app(settings)
    if args.no_worker:
        uvicorn.run(app, host=args.host, port=args.port, ws="websockets-sansio")
        return 0
    try:
        with get_jobs().worker(queues=[QUEUE]).running():  # `buttress worker --import ...` in production
            uvicorn.run(app, host=args.host, port=args.port, ws="websockets-sansio")
    except ButtressError as error:  # the worker could not start: its job tables cannot be made
        print(
            f"error: the job worker cannot start: {hide_password(str(error))}; {DATABASE_FIX}",
            file=sys.stderr,
        )
        return 1
    return 0


def hide_password(message: str) -> str:
    """``message`` without the database URL's password, should a driver quote the URL."""
    url = os.environ.get("BUTTRESS_DATABASE_URL", "")
    password = urlsplit(url).password if "://" in url else None
    return message.replace(password, "***") if password else message


if __name__ == "__main__":
    sys.exit(main())
