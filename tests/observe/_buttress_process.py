"""``python -m buttress ...`` as a real process, with no BUTTRESS_* settings but the ones a test gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_buttress(cwd: Path, *arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run the command in ``cwd`` until it exits (at most 60 s), output captured as text."""
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("BUTTRESS_")}
    return subprocess.run(
        [sys.executable, "-m", "buttress", *arguments],
        cwd=cwd,
        env=env | variables,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
