"""The music app on real databases and caches: lifetimes, bulk writes and reads, cached summaries."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from buttress.cache import get_cache
from buttress.composition import register_defaults
from buttress.container import Container, get_container
from buttress.db import Database
from buttress.errors import ScopeRequired
from buttress.http import HttpClient
from buttress.testing import Upstream
from examples.music.__main__ import main
from examples.music.app import import_plays, music_container, summary_report
from examples.music.plays import generate_plays, summary
from examples.music.services import Catalog, Listening, MusicSettings, ReportBuilder, register_music
from examples.music.tables import create_schema
from examples.music.tests.conftest import new_process

PLAY = next(generate_plays(1, seed=99)) | {"user_id": "user-new", "track_id": "track-new"}


@pytest.mark.usefixtures("isolated_settings")
def test_each_lifetime_behaves_as_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", f"sqlite:///{tmp_path / 'music.db'}")
    container = register_music(Container())
    register_defaults(container)
    create_schema(container.resolve(Database))
    # SINGLETON: one per container, and its dependencies are the container's singletons too
    assert container.resolve(Catalog) is container.resolve(Catalog)
    assert container.resolve(Catalog).http is container.resolve(HttpClient)
    assert container.resolve(MusicSettings) is container.resolve(MusicSettings)
    # TRANSIENT: new on every resolve, even inside one scope
    assert container.resolve(ReportBuilder) is not container.resolve(ReportBuilder)
    # SCOPED: one per scope, on the scope's own session; none outside a scope
    with pytest.raises(ScopeRequired):
        container.resolve(Listening)
    with container.scope() as first:
        listening = first.resolve(Listening)
        assert first.resolve(Listening) is listening
        assert listening.session is first.resolve(Session)
        assert container.resolve(ReportBuilder) is not container.resolve(ReportBuilder)
        listening.record(PLAY)  # never committed: the scope's end rolls it back
    with container.scope() as second:
        assert second.resolve(Listening) is not listening
        assert second.resolve(Listening).plays_of(["user-new"]) == []
        second.resolve(Listening).record(PLAY)
        second.resolve(Listening).commit()
    with container.scope() as third:
        assert [row["track_id"] for row in third.resolve(Listening).plays_of(["user-new"])] == ["track-new"]
    container.close()


def test_bulk_save_bulk_query_and_the_cached_summary(music_db: str) -> None:
    result = import_plays(3_000, seed=1)
    assert (result.rows, result.chunks) == (3_000, 1)
    expected = Counter(play["user_id"] for play in generate_plays(3_000, seed=1))
    container = music_container()
    db = container.resolve(Database)
    assert db.info()["backend"] == music_db
    with container.scope():
        rows = container.resolve(Listening).plays_of(["user-1", "user-2"])
    assert len(rows) == expected["user-1"] + expected["user-2"]
    assert [row["played_at"] for row in rows] == sorted(row["played_at"] for row in rows)

    first = summary(db, "user-1")
    assert summary(db, "user-1") == first  # the second read is served from the cache
    assert (db.query_cache.info()["hits"], db.query_cache.info()["misses"]) == (1, 1)
    assert sum(row["plays"] for row in first) <= expected["user-1"]

    with container.scope():  # a committed write to music_plays: the summary is never served stale
        listening = container.resolve(Listening)
        for _ in range(50):
            listening.record(PLAY | {"user_id": "user-1"})
        listening.commit()
    fresh = summary(db, "user-1")
    assert fresh[0] == {
        "track_id": "track-new",
        "artist_id": PLAY["artist_id"],
        "plays": 50,
        "ms": 50 * PLAY["ms_played"],
    }
    assert db.query_cache.info()["misses"] == 2


def test_the_cli_imports_and_summarises(isolated_settings: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "2000", "--seed", "3"]) == 0
    assert capsys.readouterr().out == "saved 2000 plays in 1 chunk(s)\n"
    assert main(["summary", "user-4"]) == 0
    assert main(["summary", "user-4"]) == 0
    out = capsys.readouterr().out
    assert out.count("top tracks of user-4:") == 2
    assert len(re.findall(r"track-\d+ +artist-\d+ +\d+ plays", out)) == 10
    assert out.strip().endswith("query cache: 1 hit(s), 1 miss(es)")


@pytest.mark.parametrize("top", ["abc", "0", "-1", "101"])
def test_a_bad_music_top_is_one_line_naming_it(
    isolated_settings: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], top: str
) -> None:
    monkeypatch.setenv("MUSIC_TOP", top)
    assert main(["summary", "user-1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: MUSIC_TOP={top!r}: ")
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(
    "url", ["sqlite:////nonexistent-dir/music.db", "postgresql://postgres:PGPW-s3cret@127.0.0.1:1/music"]
)
def test_a_database_that_cannot_be_opened_is_one_line(
    isolated_settings: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", url)
    assert main(["summary", "user-3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "check BUTTRESS_DATABASE_URL" in err
    assert "PGPW-s3cret" not in err


@pytest.fixture
def catalog(upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> Upstream:
    monkeypatch.setenv("MUSIC_CATALOG_URL", upstream.url())
    return upstream


@pytest.mark.usefixtures("isolated_settings")
def test_the_cached_catalog_call_in_memory(catalog: Upstream) -> None:
    new_process()
    artist = music_container().resolve(Catalog).artist
    assert artist("artist-7") == artist("artist-7") == {"id": "artist-7", "source": "/artists/artist-7"}
    assert catalog.calls(path="/artists/artist-7") == 1
    assert get_cache().backend_choice is not None
    new_process()  # memory is not shared, so the next call asks again
    music_container().resolve(Catalog).artist("artist-7")
    assert catalog.calls(path="/artists/artist-7") == 2


@pytest.mark.redis
@pytest.mark.usefixtures("isolated_settings", "music_redis")
def test_the_cached_catalog_call_on_redis_is_shared(catalog: Upstream) -> None:
    new_process()
    artist = music_container().resolve(Catalog).artist
    assert artist("artist-7")["id"] == "artist-7"
    assert artist("artist-7")["id"] == "artist-7"
    assert get_cache().backend_choice.chosen == "tiered"
    new_process()  # its L1 is empty, Redis still holds the profile
    assert music_container().resolve(Catalog).artist("artist-7")["id"] == "artist-7"
    assert catalog.calls(path="/artists/artist-7") == 1


@pytest.mark.usefixtures("isolated_settings")
def test_calls_still_answer_when_redis_is_unreachable(
    catalog: Upstream, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUTTRESS_REDIS_URL", f"redis://127.0.0.1:{closed_port}/11")
    monkeypatch.setenv("BUTTRESS_CACHE__BACKEND", "tiered")  # asked for Redis; it is not there
    new_process()
    artist = music_container().resolve(Catalog).artist
    assert artist("artist-3") == artist("artist-3") == {"id": "artist-3", "source": "/artists/artist-3"}
    assert catalog.calls(path="/artists/artist-3") == 1  # the second call was served locally
    import_plays(500)
    report = summary_report("user-0")  # the query cache steps aside: straight to the database, never stale
    assert report.startswith("top tracks of user-0:")
    assert report.count(" plays ") == 5
    assert summary_report("user-0") == report
    assert get_container().resolve(Database).query_cache.info()["hits"] == 0


def test_the_readme_python_blocks_run(isolated_settings: None) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - the README's own examples
