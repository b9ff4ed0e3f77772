"""The command line: a dry run estimates and sends nothing, a real run writes, a mistake exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from buttress.config import reset_settings
from buttress.db import Database
from buttress.errors import ValidationError
from buttress.testing import Fault, Upstream
from examples.summarizer import cli
from examples.summarizer.cli import app
from examples.summarizer.config import SummarizerConfig
from examples.summarizer.sources import read_sources
from examples.summarizer.store import SummaryStore

ROOT = Path(__file__).resolve().parents[3]
ROW = {"host": "a.example", "summary": "s", "prompt_tokens": 1, "completion_tokens": 1, "cost": 0.0}


@pytest.fixture
def world(upstream: Upstream, tmp_path: Path, isolated_settings: None) -> Path:
    upstream.add("news")
    upstream.add("down", Fault(errors={503: 1.0}))
    upstream.add("llm")
    listing = tmp_path / "urls.txt"
    lines = ["# pages to summarise", ""]
    lines += [upstream.url(d, f"/a/{n}") for n in range(4) for d in ("news", "down")]
    listing.write_text("\n".join(lines) + "\n")
    return listing


def test_a_dry_run_estimates_tokens_and_sends_nothing_to_the_llm(world: Path, upstream: Upstream) -> None:
    llm = upstream.url("llm", "/v1/summarize")
    result = CliRunner().invoke(app, ["run", "--dry-run", "--json", "--llm-url", llm, str(world)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["written"] == 0
    assert [i["outcome"] for i in report["items"]].count("estimated") == 4
    assert report["tokens"] > 400
    assert report["cost"] > 0
    assert upstream.calls("llm") == 0
    assert upstream.calls("news") == 4  # the pages themselves were read, to estimate
    assert not Path("buttress.db").exists()  # no database was opened


def test_a_dry_run_shows_a_table_and_says_what_it_did_not_do(world: Path, upstream: Upstream) -> None:
    result = CliRunner().invoke(app, ["run", "--dry-run", str(world)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "dry run: 4 of 8 pages would be summarised" in result.stdout
    assert "nothing was sent to the LLM or written" in result.stdout
    assert upstream.calls("llm") == 0


def test_a_real_run_writes_summaries_that_list_pages_through(world: Path, upstream: Upstream) -> None:
    runner = CliRunner()
    llm = upstream.url("llm", "/v1/summarize")
    arguments = ["run", "--json", "--llm-url", llm, "--batch-size", "3", str(world)]
    ran = runner.invoke(app, arguments, env={"SUMMARIZER_API_KEY": "sk-hush"})
    assert ran.exit_code == 0, ran.output
    assert "sk-hush" not in ran.output
    assert json.loads(ran.stdout)["written"] == 4
    assert upstream.calls("llm") == 4
    first = json.loads(runner.invoke(app, ["list", "--json", "--limit", "3"]).stdout)
    assert len(first["items"]) == 3
    assert first["next"]
    rest = json.loads(runner.invoke(app, ["list", "--json", "--limit", "3", "--after", first["next"]]).stdout)
    assert len(rest["items"]) == 1
    assert rest["next"] is None


def test_mistakes_exit_2_naming_what_to_fix(world: Path) -> None:
    runner = CliRunner()
    no_llm = runner.invoke(app, ["run", str(world)])
    assert no_llm.exit_code == 2
    assert "--llm-url" in no_llm.stderr
    bad = runner.invoke(app, ["run", "--dry-run", "not-a-file.txt"])
    assert bad.exit_code == 2
    assert "neither an http(s) URL nor a file" in bad.stderr
    secret = runner.invoke(app, ["run", "--tokens-per-minute", "50", "--api-key", "sk-hush", str(world)])
    assert secret.exit_code == 2
    assert "raise --tokens-per-minute" in secret.stderr  # the option, not the model's field
    assert "sk-hush" not in secret.output
    redis = runner.invoke(app, ["run", "--redis-url", "localhost:6379", "--dry-run", str(world)])
    assert redis.exit_code == 2
    assert redis.stderr.startswith("error: --redis-url: ")


@pytest.mark.parametrize(
    "arguments",
    [
        ["list", "--database-url", "sqlite:////nonexistent-dir/s.db"],
        [
            "run",
            "--llm-url",
            "http://127.0.0.1:1/v",
            "--database-url",
            "postgresql://u:PGPW-s3cret@127.0.0.1:1/x",
        ],
    ],
)
def test_a_database_that_cannot_be_opened_is_one_line(world: Path, arguments: list[str]) -> None:
    result = CliRunner().invoke(app, [*arguments, str(world)] if arguments[0] == "run" else arguments)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: the ")
    assert line.endswith("check --database-url (a reachable database, a writable sqlite:/// path)")
    assert "PGPW-s3cret" not in result.output


def test_urls_are_text_not_markup_and_a_run_with_nothing_summarised_exits_1(
    world: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.out, "width", 300)  # whole URLs in the tables
    runner = CliRunner()
    llm = ["--llm-url", upstream.url("llm", "/v1/summarize")]
    odd = [upstream.url("news", path) for path in ("/a[/bold]", "/b[bold]c", "/:x:")]
    ran = runner.invoke(app, ["run", *llm, *odd], terminal_width=300)
    assert ran.exit_code == 0, ran.output
    for text in ("/a[/bold]", "/b[bold]c", "/:x:"):
        assert text in ran.stdout
    assert "3 of 3 pages summarised" in ran.stdout
    listed = runner.invoke(app, ["list"], terminal_width=300)
    assert "/a[/bold]" in listed.stdout
    assert "/b[bold]c" in listed.stdout
    down = runner.invoke(app, ["run", "--json", *llm, upstream.url("down", "/x")])
    assert down.exit_code == 1  # nothing summarised: a failure for scripts, the report still printed
    assert json.loads(down.stdout)["items"][0]["outcome"] == "failed"


def test_config_and_sources_refuse_bad_values_by_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        SummarizerConfig.build(batch_size=0)
    assert caught.value.field == "batch_size"
    assert "e.g. batch_size=50" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        SummarizerConfig.build(table="drop table;")
    assert caught.value.field == "table"
    listing = tmp_path / "urls.txt"
    listing.write_text("https://ok.example/a\nftp://no.example/b\n")
    with pytest.raises(ValidationError, match=r"urls.txt:2\) is not an absolute http\(s\) URL"):
        read_sources([str(listing)])
    assert read_sources(["https://a.example/x", "http://b.example/y"]) == [
        "https://a.example/x",
        "http://b.example/y",
    ]


def test_the_demo_runs_as_a_module_on_embedded_defaults(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUTTRESS_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "examples.summarizer", "demo", "--json", "--pages", "4"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    outcomes = [i["outcome"] for i in report["items"]]
    assert outcomes.count("summarised") == 8
    assert report["written"] == 8
    assert outcomes.count("failed") == 3  # the failing domain twice (its 503s), the dead one once
    assert outcomes.count("breaker_open") == 5  # then both are refused without a request


def test_a_cursor_from_one_process_opens_the_next_page_in_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_settings: None
) -> None:
    """Cursors are signed: with BUTTRESS_DB__CURSOR_KEY set, every process accepts the others' cursors."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    db = Database(url)
    store = SummaryStore(db)
    store.create()
    store.write([{**ROW, "url": f"https://a.example/{n}", "created_at": float(n)} for n in range(5)], 10)
    db.close()
    monkeypatch.setenv("BUTTRESS_DB__CURSOR_KEY", "a-key-of-this-test-0123456789abcdef")
    reset_settings()
    arguments = ["list", "--json", "--limit", "3", "--database-url", url]
    first = json.loads(CliRunner().invoke(app, arguments).stdout)  # this process
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUTTRESS_")}
    env |= {"PYTHONPATH": str(ROOT), "BUTTRESS_DB__CURSOR_KEY": "a-key-of-this-test-0123456789abcdef"}
    command = [sys.executable, "-m", "examples.summarizer", *arguments, "--after", first["next"]]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # another
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    urls = [row["url"] for page in (first, second) for row in page["items"]]
    assert urls == [f"https://a.example/{n}" for n in (4, 3, 2, 1, 0)]
    assert second["next"] is None
