"""``buttress worker`` on a fresh database runs buttress's migrations without alembic's plugin chatter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

JOBS_MODULE = """
from buttress.jobs import job

@job(name="quiet_alembic.hello")
def hello() -> str:
    return "hi"
"""


def test_a_worker_start_logs_the_upgrade_but_no_alembic_plugin_setup(tmp_path: Path) -> None:
    (tmp_path / "quiet_alembic_jobs.py").write_text(JOBS_MODULE)
    env = {name: value for name, value in os.environ.items() if not name.startswith("BUTTRESS_")}
    env["BUTTRESS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'jobs.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "buttress", "worker", "--import", "quiet_alembic_jobs", "--burst"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Running upgrade 0001 -> 0002" in output  # INFO lines are shown, the migrations ran
    assert "setup plugin" not in output
