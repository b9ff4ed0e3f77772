"""``buttress worker`` on a fresh database runs buttress's migrations without alembic's plugin chatter."""

from __future__ import annotations

from pathlib import Path

from tests.observe._buttress_process import run_buttress

JOBS_MODULE = """
from buttress.jobs import job

@job(name="quiet_alembic.hello")
def hello() -> str:
    return "hi"
"""


def test_a_worker_start_logs_the_upgrade_but_no_alembic_plugin_setup(tmp_path: Path) -> None:
    (tmp_path / "quiet_alembic_jobs.py").write_text(JOBS_MODULE)
    done = run_buttress(
        tmp_path,
        *("worker", "--import", "quiet_alembic_jobs", "--burst"),
        BUTTRESS_DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Running upgrade 0001 -> 0002" in output  # INFO lines are shown, the migrations ran
    assert "setup plugin" not in output
