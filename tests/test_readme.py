"""Every ```python block in README.md runs as written (each in a fresh namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def _title(block: str) -> str:
    return block.strip().splitlines()[0][:60]


@pytest.mark.parametrize("block", BLOCKS, ids=[_title(b) for b in BLOCKS])
@pytest.mark.usefixtures("isolated_settings")  # examples run from defaults, in an empty directory
def test_readme_example_runs(block: str) -> None:
    exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 2
