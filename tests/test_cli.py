"""The buttress command: config (table, JSON, --check, --example, --markdown), version, usage errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from buttress.cli import app, main
from buttress.config import render_config_table, render_env_example, reset_settings
from buttress.errors import MASK

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No BUTTRESS_* variable or .env of the developer's; a wide terminal so tables do not wrap."""
    for name in list(os.environ):
        if name.upper().startswith("BUTTRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    reset_settings()
    yield
    reset_settings()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout == "buttress 0.1.0\n"


def test_no_command_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "config" in result.output
    assert "version" in result.output


def test_main_runs_the_app(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["buttress", "version"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0
    assert capsys.readouterr().out == "buttress 0.1.0\n"


def test_config_table_shows_values_sources_and_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("BUTTRESS_APP__NAME=orders\n")
    monkeypatch.setenv("BUTTRESS_REDIS_URL", "redis://app:hunter2@cache:6379/0")
    monkeypatch.setenv("BUTTRESS_SECURITY__SECRET_KEY", "super-secret-key")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    lines = {
        line.split()[1]: line.split()[3:-1] for line in result.stdout.splitlines() if "BUTTRESS_" in line
    }
    assert lines["BUTTRESS_APP__NAME"] == ["orders", "│", ".env"]
    assert lines["BUTTRESS_REDIS_URL"] == [f"redis://app:{MASK}@cache:6379/0", "│", "env"]
    assert lines["BUTTRESS_SECURITY__SECRET_KEY"] == [MASK, "│", "env"]
    assert lines["BUTTRESS_DATABASE_URL"] == ["unset", "│", "default"]
    assert lines["BUTTRESS_EVENTS__QUEUE_SIZE"] == ["1000", "│", "default"]
    assert "buttress configuration (.env)" in result.stdout
    assert "hunter2" not in result.output
    assert "super-secret-key" not in result.output


def test_config_table_says_when_the_env_file_is_missing() -> None:
    result = runner.invoke(app, ["config", "--env-file", "missing.env"])
    assert result.exit_code == 0
    assert "buttress configuration (missing.env, not found)" in result.stdout


def test_config_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "custom.env").write_text("BUTTRESS_EVENTS__QUEUE_SIZE=12\n")
    monkeypatch.setenv("BUTTRESS_SECURITY__ADMIN_TOKEN", "tok-value")
    result = runner.invoke(app, ["config", "--json", "--env-file", "custom.env"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["BUTTRESS_EVENTS__QUEUE_SIZE"] == {"value": 12, "source": ".env"}
    assert document["BUTTRESS_SECURITY__ADMIN_TOKEN"] == {"value": MASK, "source": "env"}
    assert document["BUTTRESS_REDIS_URL"] == {"value": None, "source": "default"}
    assert len(document) == 139
    assert "tok-value" not in result.output


def test_config_check_ok() -> None:
    result = runner.invoke(app, ["config", "--check"], env={"BUTTRESS_APP__NAME": "orders"})
    assert result.exit_code == 0
    assert result.stdout == (
        "OK: configuration is valid (1 set in the environment, 0 in .env; the rest defaults).\n"
    )
    assert result.stderr == ""


INVALID = {
    "BUTTRESS_EVENTS__QUEUE_SIZE": "0",
    "BUTTRESS_LOGGING__LEVEL": "loud",
    "BUTTRESS_REDIS_URL": "http://u:hunter2@cache",
}
PROBLEM_LINES = (
    "Invalid configuration (3 problems):\n"
    f"  BUTTRESS_REDIS_URL='http://u:{MASK}@cache': a URL starting with redis://, rediss://, unix://, "
    "redis+sentinel:// or redis+cluster:// "
    "(example: BUTTRESS_REDIS_URL=redis://127.0.0.1:6379/0)\n"
    "  BUTTRESS_LOGGING__LEVEL='LOUD': Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' "
    "(example: BUTTRESS_LOGGING__LEVEL=DEBUG)\n"
    "  BUTTRESS_EVENTS__QUEUE_SIZE='0': Input should be greater than or equal to 1 "
    "(example: BUTTRESS_EVENTS__QUEUE_SIZE=5000)\n"
)


@pytest.mark.parametrize("arguments", [["config", "--check"], ["config"]])
def test_invalid_configuration_exits_1_with_every_problem_on_stderr(arguments: list[str]) -> None:
    result = runner.invoke(app, arguments, env=INVALID)
    assert result.exit_code == 1
    assert result.stderr == PROBLEM_LINES
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert "hunter2" not in result.output


def test_single_problem_is_singular() -> None:
    result = runner.invoke(app, ["config", "--check"], env={"BUTTRESS_EVENTS__TRANSPORT": "redis"})
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Invalid configuration (1 problem):\n  BUTTRESS_EVENTS__TRANSPORT='redis': "
    )
    assert "set BUTTRESS_REDIS_URL" in result.stderr


def test_config_check_json(tmp_path: Path) -> None:
    valid = runner.invoke(app, ["config", "--check", "--json"])
    assert valid.exit_code == 0
    assert json.loads(valid.stdout) == {"ok": True, "problems": []}

    invalid = runner.invoke(app, ["config", "--check", "--json"], env={"BUTTRESS_EVENTS__QUEUE_SIZE": "x"})
    assert invalid.exit_code == 1
    assert json.loads(invalid.stdout) == {
        "ok": False,
        "problems": [
            {
                "variable": "BUTTRESS_EVENTS__QUEUE_SIZE",
                "value": "x",
                "expected": "Input should be a valid integer, unable to parse string as an integer",
                "example": "5000",
                "source": None,
            }
        ],
    }


def test_config_check_reads_the_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BUTTRESS_APP__ENVIRONMENT=space\n")
    result = runner.invoke(app, ["config", "--check"])
    assert result.exit_code == 1
    assert "BUTTRESS_APP__ENVIRONMENT='space'" in result.stderr


def test_example_writes_the_default_path(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "--example"])
    assert result.exit_code == 0
    assert result.stdout == "Wrote .env.example (139 variables, commented out).\n"
    assert (tmp_path / ".env.example").read_text(encoding="utf-8") == render_env_example()
    assert [p.name for p in tmp_path.iterdir()] == [".env.example"]  # no partial file left over


def test_example_writes_a_given_path_and_replaces_it(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "example.env"
    target.parent.mkdir()
    target.write_text("stale")
    result = runner.invoke(app, ["config", "--example", str(target)])
    assert result.exit_code == 0
    assert result.stdout == f"Wrote {target} (139 variables, commented out).\n"
    assert target.read_text(encoding="utf-8") == render_env_example()


def test_example_that_cannot_be_written_exits_1(tmp_path: Path) -> None:
    target = tmp_path / "absent-dir" / ".env.example"
    result = runner.invoke(app, ["config", "--example", str(target)])
    assert result.exit_code == 1
    assert result.stderr == f"cannot write {target}: No such file or directory\n"
    assert "Traceback" not in result.output


def test_example_onto_a_directory_leaves_no_partial_file(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    result = runner.invoke(app, ["config", "--example", "taken"])
    assert result.exit_code == 1
    assert result.stderr.startswith("cannot write taken: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_markdown_prints_the_readme_table() -> None:
    result = runner.invoke(app, ["config", "--markdown"])
    assert result.exit_code == 0
    assert result.stdout == render_config_table()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--check", "--example"], "use one of --check, --example and --markdown at a time"),
        (["--example", "--markdown"], "use one of --check, --example and --markdown at a time"),
        (["--json", "--markdown"], "--json goes with the table or --check"),
        (["--json", "--example"], "--json goes with the table or --check"),
        (["somewhere.env"], "a PATH (somewhere.env) is only taken by --example"),
    ],
)
def test_usage_errors_exit_2(arguments: list[str], message: str) -> None:
    result = runner.invoke(app, ["config", *arguments])
    assert result.exit_code == 2
    assert message in result.stderr


def _buttress(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("BUTTRESS_")}
    environ.update(variables)
    script = Path(sys.executable).parent / "buttress"
    return subprocess.run(
        [str(script), "config", "--check"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_installed_script_checks_the_configuration(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BUTTRESS_EVENTS__QUEUE_SIZE=5\n")
    ok = _buttress(tmp_path, BUTTRESS_APP__NAME="orders")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: configuration is valid (1 set in the environment, 1 in .env")

    bad = _buttress(tmp_path, BUTTRESS_EVENTS__TRANSPORT="kafka")
    assert bad.returncode == 1
    assert bad.stderr.startswith("Invalid configuration (1 problem):\n  BUTTRESS_EVENTS__TRANSPORT='kafka'")
    assert "Traceback" not in bad.stderr


def test_check_lists_every_problem_by_the_variable_written_with_its_env_file_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BUTTRESS_APP__NAME=orders\nBUTTRESS_CACHE__BAKCEND=tiered\n")
    environ = {
        "BUTTRESS_OBSERVE__DISK_PATHS": "/",
        "BUTTRESS_EVENTS__QUEUE_SIZE": "0",
        "BUTTRESS_REDIS_ULR": "redis://u:hunter2@h:6379/0",
        "BUTTRESS_SERVER__JWT_ISUER": "https://auth",
        "BUTTRESS_SECURITY__ADMIN_TOKNE": "tok-value",
        "BUTTRESS_CACHE__SERIALIZER": "pickle",
        "BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ON": '["nosuchmodule.Flaky"]',
    }
    result = runner.invoke(app, ["config", "--check"], env=environ)
    assert result.exit_code == 1
    retry_example = '["builtins.ConnectionError", "httpx.TransportError"]'
    assert result.stderr.splitlines() == [
        "Invalid configuration (8 problems):",
        (
            "  BUTTRESS_EVENTS__QUEUE_SIZE='0': Input should be greater than or equal to 1 "
            "(example: BUTTRESS_EVENTS__QUEUE_SIZE=5000)"
        ),
        (
            "  BUTTRESS_OBSERVE__DISK_PATHS='/': a JSON list (Expecting value: line 1 column 1 (char 0)) "
            '(example: BUTTRESS_OBSERVE__DISK_PATHS=["/", "/var/lib/app"])'
        ),
        (
            "  BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ON='nosuchmodule.Flaky': an exception class "
            "that imports here (module.Class): No module named 'nosuchmodule' "
            f"(example: BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ON={retry_example})"
        ),
        (
            "  BUTTRESS_CACHE__SERIALIZER='pickle': the pickle serializer needs a signing key of at least "
            "16 bytes: set BUTTRESS_CACHE__SIGNING_KEY (or BUTTRESS_SECURITY__SECRET_KEY) or use "
            "BUTTRESS_CACHE__SERIALIZER=json or msgpack"
        ),
        f"  BUTTRESS_REDIS_ULR='{MASK}': not a buttress setting; did you mean BUTTRESS_REDIS_URL?",
        (
            f"  BUTTRESS_SERVER__JWT_ISUER='{MASK}': not a buttress setting; "
            "did you mean BUTTRESS_SERVER__JWT_ISSUER?"
        ),
        (
            f"  BUTTRESS_SECURITY__ADMIN_TOKNE='{MASK}': not a buttress setting; "
            "did you mean BUTTRESS_SECURITY__ADMIN_TOKEN?"
        ),
        (
            f"  BUTTRESS_CACHE__BAKCEND='{MASK}' (.env line 2): not a buttress setting; "
            "did you mean BUTTRESS_CACHE__BACKEND?"
        ),
    ]
    assert "hunter2" not in result.output
    assert "tok-value" not in result.output


def test_the_table_refuses_an_unknown_variable_too() -> None:
    result = runner.invoke(app, ["config"], env={"BUTTRESS_REDIS_ULR": "redis://h"})
    assert result.exit_code == 1
    assert "did you mean BUTTRESS_REDIS_URL?" in result.stderr


def test_check_counts_every_variable_set(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BUTTRESS_APP__NAME=orders\nBUTTRESS_EVENTS__QUEUE_SIZE=5\n")
    knobs = ("RETRY__ATTEMPTS", "BREAKER__CONSECUTIVE_FAILURES", "LIMITER__BURST", "BULKHEAD__MAX_CONCURRENT")
    environ = {f"BUTTRESS_RESILIENCE__PIPELINES__{name}__{knob}": "3" for name in "ABC" for knob in knobs}
    result = runner.invoke(app, ["config", "--check"], env=environ)
    assert result.exit_code == 0, result.output
    assert (
        result.stdout
        == "OK: configuration is valid (12 set in the environment, 2 in .env; the rest defaults).\n"
    )


def test_a_copy_of_env_example_checks_ok_and_is_healthy(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parent.parent / ".env.example", tmp_path / ".env")
    check = runner.invoke(app, ["config", "--check"])
    assert check.exit_code == 0, check.output
    assert check.stdout.startswith("OK: configuration is valid (0 set in the environment, 0 in .env")
    health = runner.invoke(app, ["health", "--json"])
    assert health.exit_code == 0, health.output
    assert json.loads(health.stdout)["status"] in {"pass", "warn"}
