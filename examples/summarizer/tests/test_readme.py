"""Every ```python block of the summariser's README runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.usefixtures("isolated_settings")
def test_every_python_block_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert BLOCKS
    for block in BLOCKS:
        exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102
    assert "the 'down' domain saw 3 requests" in capsys.readouterr().out
