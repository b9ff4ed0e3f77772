"""The layer contracts in pyproject.toml hold for the tree, and each one fails when a violation is planted.

Each planted case copies src/buttress into a temporary directory, adds one bad import and runs
``lint-imports`` with the project's own configuration against the copy (PYTHONPATH puts the copy first).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

LAYERS = "Layers: imports point down only"
PRIVATE = "No package imports another package's private module"
ACYCLIC = "No import cycle between the packages and modules directly under buttress"
FACADE = "Nothing inside buttress imports the top-level facade"
CONTRACTS = (LAYERS, PRIVATE, ACYCLIC, FACADE)


def lint_imports(pythonpath: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), str(CONFIG), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def broken(output: str) -> set[str]:
    return {name for name in CONTRACTS if f"{name} BROKEN" in output}


def planted_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A copy of src/buttress with ``files`` (paths under buttress/) appended to or created."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "buttress", src / "buttress", ignore=shutil.ignore_patterns("__pycache__"))
    for relative, line in files.items():
        path = src / "buttress" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = path.read_text() if path.exists() else '"""Planted by tests/test_layers.py."""\n'
        path.write_text(existing + line + "\n")
    return src


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(None, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS:
        assert f"{name} KEPT" in result.stdout


PLANTS = {
    "upward import (foundation -> composition root)": (
        {"errors.py": "import buttress.server  # noqa"},
        {LAYERS},
        "buttress.errors is not allowed to import buttress.server",
    ),
    "upward import inside a function": (
        {"clock.py": "def _late() -> None:\n    import buttress.cache  # noqa: PLC0415"},
        {LAYERS},
        "buttress.clock is not allowed to import buttress.cache",
    ),
    "observe imports what it observes": (
        {"observe/_planted.py": "from buttress.http import HttpClient"},
        {LAYERS},
        "buttress.observe is not allowed to import buttress.http",
    ),
    "private module of another package": (
        {"http/_planted.py": "from buttress.cache._memory import MemoryBackend"},
        {PRIVATE},
        "buttress.http._planted -> buttress.cache._memory",
    ),
    "cycle between two packages of one layer": (
        {
            "observe/_planted.py": "import buttress.events",
            "events/_planted.py": "import buttress.observe.metrics",
        },
        {ACYCLIC},
        "No cycles are allowed in buttress.",
    ),
    "a new package that is not in the picture": (
        {"widgets/__init__.py": "from buttress.errors import ButtressError"},
        {LAYERS},
        "buttress.widgets",
    ),
    "a module importing the top-level facade": (
        {"cache/_planted.py": "import buttress"},
        {FACADE},
        "buttress.cache._planted -> buttress",
    ),
}


@pytest.mark.parametrize("case", PLANTS, ids=list(PLANTS))
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, case: str) -> None:
    files, contracts, detail = PLANTS[case]
    result = lint_imports(planted_tree(tmp_path, files), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert contracts <= broken(output), output  # an upward import usually closes a cycle too
    assert detail in output


def test_make_lint_runs_the_contracts() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint_target = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "lint-imports" in lint_target


def function_level_imports_without_reason() -> dict[str, list[int]]:
    """File (under buttress/) -> lines of imports inside a function whose noqa gives no ``- <reason>``."""
    found: dict[str, list[int]] = {}
    package = ROOT / "src" / "buttress"
    for path in sorted(package.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    text = "\n".join(lines[inner.lineno - 1 : inner.end_lineno])
                    if not re.search(r"noqa: PLC0415 - \S", text):
                        found.setdefault(path.relative_to(package).as_posix(), []).append(inner.lineno)
    return {name: sorted(set(numbers)) for name, numbers in found.items()}


def test_every_function_level_import_states_its_reason() -> None:
    assert function_level_imports_without_reason() == {}
