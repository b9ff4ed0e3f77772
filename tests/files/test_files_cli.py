"""``buttress files stats|ls|archive|restore|cleanup`` on the process's store, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from buttress.cli import app
from buttress.clock import FakeClock
from buttress.container import get_container
from buttress.errors import ValidationError
from buttress.files import FileStore
from buttress.files.cli import parse_duration, parse_mark
from buttress.jobs import REGISTRY

DAY = 86400.0
runner = CliRunner()


@pytest.fixture
def served(isolated_settings: None, make_store: Callable[..., FileStore]) -> Iterator[FileStore]:
    """A store as the process's FileStore (what the commands use)."""
    store = make_store(quota=1_000_000)
    with get_container().override(FileStore, store):
        yield store


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["files", *args])
    return result.exit_code, result.stdout, result.stderr


def test_stats_and_ls_show_the_store(served: FileStore) -> None:
    first = served.save(b"episode one\n", name="one.txt", owner="ana", tags=["show"])
    served.save(b"episode two\n", name="two.txt", owner="bo")
    served.archive(first.id)
    code, out, _ = _run("stats", "--json")
    assert code == 0
    stats = json.loads(out)
    assert stats["stored"]["files"] == 1
    assert stats["archived"] == {"files": 1, "bytes": first.size}
    assert stats["quota"]["quota"] == 1_000_000
    assert [o["scope"] for o in stats["owners"]] == ["owner:ana", "owner:bo"]
    code, out, _ = _run("stats")
    assert code == 0
    assert "owner:ana" in out
    assert "archived: 1 files" in out
    code, out, _ = _run("ls", "--owner", "ana", "--json")
    assert [f["id"] for f in json.loads(out)] == [first.id]
    code, out, _ = _run("ls", "--state", "stored")
    assert "two.txt" in out
    assert "one.txt" not in out
    code, out, _ = _run("ls", "--tag", "nothing")
    assert (code, out.strip()) == (0, "no files match")
    code, _, err = _run("ls", "--state", "gone")
    assert code == 2
    assert "stored or archived" in err


def test_archive_and_restore_by_id(served: FileStore) -> None:
    saved = served.save(b"keep me\n", name="keep.txt")
    code, out, _ = _run("archive", saved.id, "--json")
    assert code == 0
    assert json.loads(out)["state"] == "archived"
    code, out, _ = _run("restore", saved.id)
    assert (code, out.strip()) == (0, f"file {saved.id} (keep.txt): stored")
    assert served.read_bytes(saved.id) == b"keep me\n"
    code, _, err = _run("archive", uuid.uuid4().hex)
    assert code == 1
    assert "not found" in err.lower()
    code, _, err = _run("restore", "../etc/passwd")
    assert code == 1
    assert "file_id" in err


def test_cleanup_with_a_rule_from_the_options_dry_run_first(served: FileStore, clock: FakeClock) -> None:
    old = served.save(b"old\n", name="old.txt", tags=["tmp"])
    kept = served.save(b"old but kept\n", name="kept.txt")
    clock.advance(40 * DAY)
    args = ["cleanup", "--max-age", "30d", "--tag", "tmp", "--action", "delete"]
    code, out, _ = _run(*args, "--dry-run", "--json")
    assert code == 0
    dry = json.loads(out)
    assert (dry["dry_run"], dry["deleted"]) == (True, 1)
    assert [a["file_id"] for a in dry["actions"]] == [old.id]
    assert len(served.list()) == 2  # nothing changed
    code, out, _ = _run(*args)
    assert code == 0
    assert "1 deleted" in out
    assert old.id in out
    assert [f.id for f in served.list()] == [kept.id]


def test_cleanup_uses_the_rules_the_imported_module_defines(
    served: FileStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(REGISTRY, "tasks", dict(REGISTRY.tasks))  # the module's job type goes with the test
    monkeypatch.setattr(REGISTRY, "schedules", dict(REGISTRY.schedules))
    name = f"files_rules_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from buttress.files._cleanup_job import schedule_cleanup\n"
        "from buttress.files._retention import Retention\n"
        "schedule_cleanup([Retention(max_age=10 * 86400)], cron='0 4 * * *')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = served.save(b"old\n", name="old.txt")
    clock.advance(11 * DAY)
    code, out, err = _run("cleanup", "--import", name, "--json")
    assert code == 0, err
    assert json.loads(out)["archived"] == 1
    assert served.stat(saved.id).state == "archived"
    code, _, err = _run("cleanup", "--import", "no_such_module_here")
    assert code == 1
    assert "no_such_module_here" in err


def test_cleanup_without_rules_sweeps_only_and_bad_options_are_usage_errors(
    served: FileStore, clock: FakeClock
) -> None:
    served.save(b"old\n", name="old.txt")
    upload = served.begin(name="crashed.bin", size=10)
    upload.write(b"partial")
    clock.advance(100 * DAY)
    code, out, _ = _run("cleanup", "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["actions"], report["sweep"]["reservations"]) == ([], 1)
    assert len(served.list()) == 1
    for bad, field in (
        (["--max-age", "a month"], "'--max-age'"),
        (["--tag", "tmp"], "'--max-age'"),
        (["--max-age", "1d", "--action", "shred"], "'--action'"),
        (["--high-water", "lots"], "'--high-water'"),
        (["--max-age", "1d", "--state", "archived"], "'--action'"),  # archiving archived files
    ):
        code, _, err = _run("cleanup", *bad)
        assert code == 2, (bad, err)
        assert field in err, (bad, err)


def test_durations_and_marks_parse() -> None:
    assert parse_duration("30d", "max_age") == 30 * DAY
    assert parse_duration("12h", "idle") == 12 * 3600
    assert parse_duration("90", "idle") == 90
    assert parse_duration("2w", "idle") == 14 * DAY
    assert parse_mark("0.9", "high_water") == 0.9
    assert parse_mark("50GB", "high_water") == 50e9
    with pytest.raises(ValidationError) as caught:
        parse_duration("-1d", "max_age")
    assert caught.value.context["field"] == "max_age"
