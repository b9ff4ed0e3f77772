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


@pytest.mark.usefixtures("isolated_settings")
def test_the_transport_example_shows_a_retried_503_become_a_200(capsys: pytest.CaptureFixture[str]) -> None:
    """The transport example claims a retry: its seeded upstream answers 503, then 200."""
    (block,) = [b for b in BLOCKS if "ResilientTransport(settings=settings)" in b]
    test_readme_example_runs(block)
    assert capsys.readouterr().out == "200 after 2 attempts\n"
