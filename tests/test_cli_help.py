"""``buttress --help`` answers without typer (buttress.__main__), with the very text typer prints.

The stored text (src/buttress/_cli_help.py) is compared with the typer app's own output, run in a fresh
interpreter as a user would; regenerate it with ``.venv/bin/python -m tests.test_cli_help``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from buttress._cli_help import HELP

HELP_MODULE = Path(__file__).parent.parent / "src" / "buttress" / "_cli_help.py"
RUN_TYPER = "import sys; from buttress.cli import main; sys.argv[0] = 'buttress'; main()"
PROBE = "import sys; sys.argv[0] = 'buttress'; from buttress.__main__ import main; main()"


def _run(code: str, *arguments: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-c", code, *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def typer_help() -> str:
    """What the typer app prints for ``buttress --help`` at 80 columns."""
    result = _run(RUN_TYPER, "--help")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_stored_help_is_typers_own() -> None:
    assert typer_help() == HELP, (
        "regenerate src/buttress/_cli_help.py: .venv/bin/python -m tests.test_cli_help"
    )


def test_help_does_not_import_typer_rich_or_the_rest_of_buttress() -> None:
    code = (
        "import sys\n"
        "from buttress.__main__ import main\n"
        "sys.argv[0] = 'buttress'\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    loaded = ('typer', 'rich', 'pydantic', 'buttress.')\n"
        "    print(sorted(m for m in sys.modules if m.startswith(loaded)), file=sys.stderr)\n"
    )
    result = _run(code, "--help")
    assert result.returncode == 0
    assert result.stdout == HELP
    assert result.stderr.strip() == "['buttress.__main__', 'buttress._cli_help', 'buttress._lazy']"


def test_no_arguments_prints_the_help_on_stderr_and_exits_2_as_typer_does() -> None:
    fast, slow = _run(PROBE), _run(RUN_TYPER)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert (fast.returncode, fast.stderr) == (2, HELP)


@pytest.mark.parametrize("columns", [60, 79])
def test_a_narrow_terminal_gets_typers_wrapping(columns: int) -> None:
    fast, slow = _run(PROBE, "--help", columns=columns), _run(RUN_TYPER, "--help", columns=columns)
    assert fast.returncode == 0
    assert fast.stdout == slow.stdout
    assert fast.stdout != HELP


def test_other_arguments_run_the_app() -> None:
    result = _run(PROBE, "version")
    assert (result.returncode, result.stdout) == (0, "buttress 0.1.0\n")


def _help_module(text: str) -> str:
    assert '"""' not in text
    assert "\\" not in text
    return (
        '"""The text of ``buttress --help`` at 80 columns, as typer prints it '
        "(checked by tests/test_cli_help.py).\n\n"
        "Regenerate after changing a command or its docstring: ``.venv/bin/python -m tests.test_cli_help``.\n"
        '"""\n\n'
        f'HELP = """\\\n{text}"""\n'
    )


if __name__ == "__main__":
    HELP_MODULE.write_text(_help_module(typer_help()), encoding="utf-8")
    print(f"wrote {HELP_MODULE}")
