"""How long a cleanup of N expired files takes: dry run, delete and archive, on SQLite and PostgreSQL.

The files are seeded directly (rows through one ``executemany``, counters set, a small file on disk per
row under the store's key), one second apart, as a store that has been saving for a while would hold
them; then the clock moves past ``max_age`` and the cleanup runs. The issue's goal: 100k expired files
in at most 60 s. ``--ties`` saves them all at one instant (a bulk import); the indexes end in ``id``
(``(state, created_at, id)``), so ties cost no sort per batch.

    .venv/bin/python -m benchmarks.files_cleanup [N] [--archive M] [--only sqlite|postgresql]

PostgreSQL is ``BUTTRESS_TEST_DATABASE_URL`` (default the local ``test`` database), in a fresh database
that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from sqlalchemy import text
from tests._fresh_db import fresh_postgres

from buttress.clock import FakeClock
from buttress.config import FilesSettings
from buttress.db import Database
from buttress.files import FileStore, LocalBlobStore
from buttress.files._cleanup import CleanupReport
from buttress.files._retention import Retention
from buttress.observe.metrics import MetricsRegistry

DATABASE_URL: Final = os.environ.get(
    "BUTTRESS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
DAY: Final = 86400.0
BODY: Final = b"an old upload nobody reads any more\n" * 8
_INSERT = text(
    "INSERT INTO buttress_files (id, key, owner, name, content_type, size, sha256, state, metadata, "
    "created_at, accessed_at) VALUES (:id, :key, :owner, :name, 'text/plain', :size, :sha256, 'stored', "
    "'{}', :now, :now)"
)


def _seed(store: FileStore, root: Path, count: int, now: float, *, ties: bool) -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    rows = []
    for index in range(count):
        file_id = uuid.uuid4().hex
        key = f"files/{file_id[:2]}/{file_id}"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(BODY)
        rows.append(
            {"id": file_id, "key": key, "owner": f"user-{index % 50}", "name": f"{index}.txt",
             "size": len(BODY), "sha256": digest, "now": now if ties else now - count + index}
        )  # fmt: skip
    owners = {str(row["owner"]) for row in rows}
    with store.db.engine.begin() as connection:
        connection.execute(_INSERT, rows)
        usage = [("*", count)] + [(owner, count // len(owners)) for owner in sorted(owners)]
        connection.execute(
            text(
                "INSERT INTO buttress_file_usage (scope, used, files) VALUES (:scope, :used, :files) "
                "ON CONFLICT (scope) DO UPDATE SET used = buttress_file_usage.used + excluded.used, "
                "files = buttress_file_usage.files + excluded.files"
            ),
            [
                {"scope": scope if scope == "*" else f"owner:{scope}", "used": n * len(BODY), "files": n}
                for scope, n in usage
            ],
        )


@contextmanager
def _database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'files.db'}"
        return
    with fresh_postgres(DATABASE_URL, "buttress_bench_cleanup") as url:
        yield url


def _store(url: str, root: Path, clock: FakeClock) -> FileStore:
    db = Database(url)
    db.upgrade()
    return FileStore(
        LocalBlobStore(root), db=db, settings=FilesSettings(), clock=clock, metrics=MetricsRegistry()
    )


def _timed(kind: str, what: str, count: int, run: Callable[[], CleanupReport]) -> None:
    started = time.perf_counter()
    report = run()
    seconds = time.perf_counter() - started
    done = len(report.actions)
    rate = count / seconds
    print(f"{kind:<10} {what:<18} {count:>7} files {seconds:7.2f} s {rate:9.0f} files/s ({done} listed)")


def bench(kind: str, count: int, archived: int, *, ties: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, _database(kind, Path(tmp)) as url:
        root = Path(tmp) / "blobs"
        clock = FakeClock(start_time=time.time())
        store = _store(url, root, clock)
        _seed(store, root, count, clock.time(), ties=ties)
        clock.advance(31 * DAY)
        delete = [Retention(action="delete", max_age=30 * DAY)]
        _timed(kind, "dry run (delete)", count, lambda: store.cleanup(rules=delete, dry_run=True))
        _timed(kind, "delete", count, lambda: store.cleanup(rules=delete))
        assert store.usage().files == 0
        if archived:
            _seed(store, root, archived, clock.time(), ties=ties)
            clock.advance(31 * DAY)
            archive = [Retention(max_age=30 * DAY)]
            _timed(kind, "archive (gzip)", archived, lambda: store.cleanup(rules=archive))
        store.db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=10_000)
    parser.add_argument("--archive", type=int, default=2_000, help="files to archive after the delete")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--ties", action="store_true", help="every file saved at the same instant")
    options = parser.parse_args()
    for kind in ("sqlite", "postgresql"):
        if options.only in (None, kind):
            bench(kind, options.count, options.archive, ties=options.ties)


if __name__ == "__main__":
    main()
