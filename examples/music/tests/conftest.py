"""Where the music app's state lives in a test: SQLite in a temporary folder or a PostgreSQL database of its
own; the cache in memory or under a key prefix of its own in Redis database 11."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_DB = 11


def new_process() -> None:
    """Forget every process-wide object, as a new process would."""
    from buttress.container import reset_container

    reset_container()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def music_db(
    request: pytest.FixtureRequest, isolated_settings: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """BUTTRESS_DATABASE_URL for the test: an SQLite file, or a database of our own on the real PostgreSQL.

    A database rather than a schema, so that dropping it leaves nothing behind.
    """
    if request.param == "sqlite":
        monkeypatch.setenv("BUTTRESS_DATABASE_URL", f"sqlite:///{tmp_path / 'music.db'}")
        yield "sqlite"
        return
    import psycopg

    base = request.getfixturevalue("database_url")
    name = f"music_example_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        monkeypatch.setenv("BUTTRESS_DATABASE_URL", f"{base.rsplit('/', 1)[0]}/{name}")
        try:
            yield "postgresql"
        finally:
            from buttress.container import reset_container

            reset_container()  # close the pool before dropping the database it is connected to
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def music_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """BUTTRESS_REDIS_URL on database 11 with a key prefix of this test's own, deleted afterwards."""
    import redis

    url = f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    prefix = f"music-example-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BUTTRESS_REDIS_URL", url)
    monkeypatch.setenv("BUTTRESS_CACHE__PREFIX", prefix)
    monkeypatch.setenv("BUTTRESS_EVENTS__PREFIX", f"{prefix}:events")
    yield prefix
    from buttress.container import reset_container

    reset_container()
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
