"""The five examples keep their shape, and the line counts their READMEs claim stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
NAMES = ["poster", "music", "summarizer", "podpromo", "astrology"]


def _lines(paths: list[Path]) -> int:
    return sum(len(path.read_text(encoding="utf-8").splitlines()) for path in paths)


def _claimed(readme: str, row: str) -> int:
    """The last cell of the Lines table's row that starts with ``row``."""
    found = re.search(rf"^\| {row}\b.*\| ([\d,]+) \|$", readme, flags=re.MULTILINE)
    assert found, f"the README's Lines table has no '{row}' row"
    return int(found.group(1).replace(",", ""))


@pytest.mark.parametrize("name", NAMES)
def test_an_example_has_a_readme_an_entry_point_and_tests(name: str) -> None:
    folder = EXAMPLES / name
    for part in ("__init__.py", "__main__.py", "README.md", "tests/__init__.py"):
        assert (folder / part).is_file(), f"examples/{name}/{part} is missing"
    assert list((folder / "tests").glob("test_*.py")), f"examples/{name}/tests has no test file"


@pytest.mark.parametrize("name", NAMES)
def test_the_line_counts_in_the_readme_are_true(name: str) -> None:
    folder = EXAMPLES / name
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Lines" in readme
    assert _claimed(readme, "app code") == _lines(sorted(folder.glob("*.py"))), "recount: wc -l *.py"
    assert _claimed(readme, "tests") == _lines(sorted((folder / "tests").glob("*.py"))), "recount the tests"


@pytest.mark.parametrize("name", NAMES)
def test_the_index_names_every_example_with_its_true_counts(name: str) -> None:
    index = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    row = re.search(
        rf"^\| \[{name}\]\({name}/README.md\) \| [^|]+ \| ([\d,]+)[^|]* \| ([\d,]+) \|", index, re.M
    )
    assert row, f"examples/README.md has no row for {name}"
    folder = EXAMPLES / name
    assert int(row.group(1).replace(",", "")) == _lines(sorted(folder.glob("*.py")))
    assert int(row.group(2).replace(",", "")) == _lines(sorted((folder / "tests").glob("*.py")))
